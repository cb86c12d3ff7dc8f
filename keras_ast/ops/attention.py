"""Scaled dot-product attention, each backend's kernel from one table.

Every function here takes query, key and value laid out
`(batch, tokens, heads, head_dim)`, as `keras.ops.dot_product_attention`
does, and returns the context in the same layout and in the query's
dtype. `softmax_attention` is the plain `keras.ops` form, which also
returns the probabilities and applies dropout to them; the others compute
the same context with another kernel:

- `fused_attention`: `keras.ops.dot_product_attention` (cuDNN, flash).
- `torch_sdpa_attention`: PyTorch's `scaled_dot_product_attention` on
  the heads as strided views, where Keras' op would copy them first.
- `attention_products`: two explicit products a few heads at a time, the
  form XLA and TensorFlow's graph run fastest on a CPU.

`ATTENTION_FUNCTIONS` maps each Keras backend to its choice among these
(which may depend on the device and on training), and `attention` calls
the current backend's entry.
"""

import functools

import keras
from keras import ops

from keras_ast.ops import dense
from keras_ast.ops.compiler import jax_on_cpu


def softmax_attention(query, key, value, scale, dropout=None):
    """`softmax(q k^T * scale) v` in plain `keras.ops`, probabilities too.

    Args:
        query: `(batch, queries, heads, head_dim)`.
        key, value: `(batch, keys, heads, head_dim)`.
        scale: the factor on the logits, usually `head_dim ** -0.5`.
        dropout: optional callable applied to the probabilities (in the
            query's dtype) before they weigh the values.

    Returns:
        `(context, probabilities)`: the context
        `(batch, queries, heads, head_dim)` in the query's dtype, and the
        float32 probabilities `(batch, heads, queries, keys)` (before
        dropout).

    Examples:
    >>> q = np.ones((1, 3, 2, 4), "float32")
    >>> context, probabilities = softmax_attention(q, q, q, 0.5)
    >>> tuple(probabilities.shape)
    (1, 2, 3, 3)
    """
    logits = ops.einsum("bqhd,bkhd->bhqk", query, key) * scale
    probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    weights = ops.cast(probabilities, query.dtype)
    if dropout is not None:
        weights = dropout(weights)
    context = ops.einsum("bhqk,bkhd->bqhd", weights, value)
    return context, probabilities


def fused_attention(query, key, value, scale):
    """`keras.ops.dot_product_attention`, the backend's fused kernel."""
    return ops.dot_product_attention(query, key, value, scale=scale)


def torch_sdpa_attention(query, key, value, scale):
    """PyTorch's sdpa on the heads as views (PyTorch backend only).

    Keras' op copies the inputs into heads-first order where it cannot
    prove that flash attention applies; sdpa's kernels take the strided
    views, as `transformers` passes them.
    """
    import torch.nn.functional as F

    heads_first = [x.transpose(1, 2) for x in (query, key, value)]
    return F.scaled_dot_product_attention(*heads_first,
                                          scale=scale).transpose(1, 2)


def attention_products(query, key, value, scale, group=2,
                       softmax_kernel=False):
    """Softmax attention as explicit products, `group` heads at a time.

    The softmax runs in float32. Heads go through a loop (`ops.map`)
    `group` at a time, so that one group's scores are in memory at once,
    not the whole batch's; `group` falls back to 1 where it does not divide
    the heads.

    Two forms of the softmax:
    - `softmax_kernel=True`: scores laid out queries x keys through
      `ops.softmax` (one kernel in TensorFlow's graph, which runs each step
      of a written-out softmax as a pass of its own);
    - otherwise written out, the context divided by the sum after the
      second product. float32 scores are laid out keys x queries (the
      reductions run along the major axis); other dtypes use the usual
      queries x keys layout and `keras_ast.ops.dense.einsum`, which may
      return float32.

    Args:
        query, key, value: `(batch, tokens, heads, head_dim)`.
        scale: the factor on the logits.
        group: heads per loop step.
        softmax_kernel: use `ops.softmax` (see above).

    Returns:
        The context `(batch, tokens, heads, head_dim)`, query's dtype.
    """
    heads, head_dim = query.shape[2], query.shape[3]
    group = group if heads % group == 0 else 1
    keys_major = (keras.backend.standardize_dtype(query.dtype) == "float32"
                  and not softmax_kernel)
    axis = -2 if keys_major else -1

    def grouped(x):  # (batch * heads / group, group, tokens, head_dim)
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, group, x.shape[2], head_dim))

    def attend(group_qkv):
        q, k, v = group_qkv
        if keys_major:  # float32: nothing to widen
            scores = ops.matmul(k, ops.transpose(q, (0, 2, 1)))
        else:
            scores = dense.einsum("gqd,gkd->gqk", q, k)
        scores = ops.cast(scores, "float32")
        if softmax_kernel:
            weights = ops.softmax(scores, axis=-1)
            return ops.matmul(ops.cast(weights, v.dtype), v)
        weights = ops.exp(scores - ops.max(scores, axis=axis, keepdims=True))
        context = dense.einsum(
            "gkq,gkd->gqd" if keys_major else "gqk,gkd->gqd",
            ops.cast(weights, v.dtype), v)
        context = (ops.cast(context, "float32")
                   / ops.sum(weights, axis=axis)[..., None])
        return ops.cast(context, v.dtype)

    query = query * ops.cast(scale, query.dtype)
    context = ops.map(attend, (grouped(query), grouped(key), grouped(value)))
    context = ops.reshape(context, (-1, heads) + tuple(context.shape[2:]))
    return ops.transpose(context, (0, 2, 1, 3))


@functools.lru_cache(maxsize=None)
def _tensorflow_has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _jax_attention(query, key, value, scale, training=False):
    # XLA compiles the fused op for a CPU slowly; training takes the plain
    # softmax, whose gradient is no slower than the loop's.
    if not jax_on_cpu():
        return fused_attention(query, key, value, scale)
    if training:
        return softmax_attention(query, key, value, scale)[0]
    return attention_products(query, key, value, scale)


def _tensorflow_attention(query, key, value, scale, training=False):
    if _tensorflow_has_gpu():
        return fused_attention(query, key, value, scale)
    if training:
        return softmax_attention(query, key, value, scale)[0]
    return attention_products(query, key, value, scale, softmax_kernel=True)


def _torch_attention(query, key, value, scale, training=False):
    return torch_sdpa_attention(query, key, value, scale)


def _generic_attention(query, key, value, scale, training=False):
    return fused_attention(query, key, value, scale)


# Keras backend -> `fn(query, key, value, scale, training=False)`.
ATTENTION_FUNCTIONS = {
    "jax": _jax_attention,
    "tensorflow": _tensorflow_attention,
    "torch": _torch_attention,
}


def attention(query, key, value, scale, training=False):
    """The current backend's attention (`ATTENTION_FUNCTIONS`).

    Equal to `softmax_attention(query, key, value, scale)[0]` within
    rounding. Backends outside the table use `fused_attention`.

    Args:
        query: `(batch, queries, heads, head_dim)`.
        key, value: `(batch, keys, heads, head_dim)`.
        scale: the factor on the logits.
        training: whether gradients will be taken (the kernel may differ).

    Returns:
        The context `(batch, queries, heads, head_dim)`, query's dtype.

    Examples:
    >>> q = np.ones((1, 3, 2, 4), "float32")
    >>> tuple(attention(q, q, q, 0.5).shape)
    (1, 3, 2, 4)
    """
    function = ATTENTION_FUNCTIONS.get(keras.config.backend(),
                                       _generic_attention)
    return function(query, key, value, scale, training=bool(training))
