"""The pre-norm transformer encoder layer of AST (ViT/DeiT style)."""

import functools

import keras
from keras import ops

from keras_ast.ops import dense as products
from keras_ast.ops import compiler as xla_options


@functools.lru_cache(maxsize=None)
def _fused_attention():
    """Whether `ops.dot_product_attention` is the fastest attention here.

    It is on PyTorch (sdpa: flash kernels on CPU and GPU) and on GPUs (cuDNN
    flash attention). XLA on a CPU compiles it about four times as slowly
    as `_attention_products` (measured: benchmarks/README.md, "Where the
    time goes").
    """
    backend = keras.config.backend()
    if backend == "jax":
        return not xla_options.jax_on_cpu()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    return True


def _attention_products(query, key, value, scale, group=2):
    """Softmax attention as explicit products, `group` heads at a time.

    `(batch, tokens, heads, head_dim)` in and out, like
    `ops.dot_product_attention`; the softmax runs in float32. This is the
    form XLA compiles fastest for a CPU, and TensorFlow's graph runs fastest
    (benchmarks/README.md, "Where the time goes"):
    - heads go through a loop (`ops.map`) `group` at a time, so one
      group's scores (1214 x 1214 a head for AudioSet) are in memory and in
      cache, not the whole batch's (70 M scores a clip and layer);
    - on TensorFlow, scores are laid out queries x keys and go through
      `ops.softmax`: one kernel in TensorFlow's graph (Keras' `predict` on
      a CPU-only machine), which runs each step of a written-out softmax as
      a pass of its own; under XLA it is as fast as the form below;
    - under JAX, the softmax is written out and the context is divided by
      its sum after the second product (64 values a query instead of
      every score). In float32, scores are laid out keys x queries: the
      max and sum reduce along the major axis, which XLA vectorises across
      queries. bfloat16 products (YNNPACK) run fastest as queries x keys,
      the usual layout, and return float32 (`products.einsum`).
    `group` falls back to 1 where it does not divide the heads.
    """
    heads, head_dim = query.shape[2], query.shape[3]
    group = group if heads % group == 0 else 1
    softmax_kernel = keras.config.backend() == "tensorflow"
    keys_major = (keras.backend.standardize_dtype(query.dtype) == "float32"
                  and not softmax_kernel)
    axis = -2 if keys_major else -1

    def grouped(x):  # (batch * heads / group, group, tokens, head_dim)
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, group, x.shape[2], head_dim))

    def attend(group_qkv):
        q, k, v = group_qkv
        if keys_major:  # JAX, float32: nothing to widen
            scores = ops.matmul(k, ops.transpose(q, (0, 2, 1)))
        else:
            scores = products.einsum("gqd,gkd->gqk", q, k)
        scores = ops.cast(scores, "float32")
        if softmax_kernel:
            weights = ops.softmax(scores, axis=-1)
            return ops.matmul(ops.cast(weights, v.dtype), v)
        weights = ops.exp(scores - ops.max(scores, axis=axis, keepdims=True))
        context = products.einsum(
            "gkq,gkd->gqd" if keys_major else "gqk,gkd->gqd",
            ops.cast(weights, v.dtype), v)
        context = (ops.cast(context, "float32")
                   / ops.sum(weights, axis=axis)[..., None])
        return ops.cast(context, v.dtype)

    query = query * ops.cast(scale, query.dtype)
    context = ops.map(attend, (grouped(query), grouped(key), grouped(value)))
    context = ops.reshape(context, (-1, heads) + tuple(context.shape[2:]))
    return ops.transpose(context, (0, 2, 1, 3))


def _dot_product_attention(query, key, value, scale):
    """`ops.dot_product_attention`; on PyTorch, sdpa on the heads as views.

    `(batch, tokens, heads, head_dim)` in and out. Keras' PyTorch op copies
    the query, key and value into heads-first order where it cannot prove
    flash attention applies (every CPU); sdpa's kernels take the strided
    views, as `transformers` passes them. Those copies were 11 ms of a
    410 ms layer on 4 AudioSet clips (benchmarks/README.md).
    """
    if keras.config.backend() != "torch":
        return ops.dot_product_attention(query, key, value, scale=scale)
    import torch.nn.functional as F

    heads_first = [x.transpose(1, 2) for x in (query, key, value)]
    return F.scaled_dot_product_attention(*heads_first,
                                          scale=scale).transpose(1, 2)


def _gelu(x):
    """Exact (erf) GELU, computed in float32 under mixed precision.

    TensorFlow's bfloat16 erf took 82-104 ms on the MLP of 4 AudioSet clips
    against 45 ms in float32 (XLA's 30 against 24 ms). PyTorch's bfloat16
    kernel already computes in float32 in registers (7 ms), where a cast to
    float32 and back would take 68 ms, so there the input's dtype stays.
    """
    if keras.config.backend() != "torch":
        x = ops.cast(x, "float32")
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTEncoderLayer(keras.layers.Layer):
    """One pre-norm transformer block: attention, then an MLP.

    `x + Attention(LayerNorm(x))`, then `x + MLP(LayerNorm(x))` with an exact
    (erf) GELU, as in `transformers`' `ASTLayer`. Attention goes through
    the backend's fused kernels where it has them
    (`keras.ops.dot_product_attention`; PyTorch's sdpa on the heads as
    views); on a CPU under JAX and TensorFlow, explicit products are
    faster (`_attention_products`), and training takes the plain softmax.
    LayerNorm runs in float32 under mixed precision. Kernels start
    LeCun-normal (variance 1 / fan-in), not at `transformers`' fixed
    standard deviation of 0.02: that value suits width 768, and leaves a
    narrow model trained from scratch near uniform attention, stuck at
    chance for several epochs.

    Args:
        hidden_dim: width of the tokens.
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: width of the MLP.
        layer_norm_epsilon: LayerNorm epsilon.
        dropout: dropout rate after the attention output and the MLP.
        attention_dropout: dropout rate on the attention probabilities.

    Call arguments:
        tokens: `(batch, sequence, hidden_dim)`.
        training: whether dropout is active.
        return_attention_scores: also return the attention probabilities
            `(batch, heads, sequence, sequence)`; computed explicitly, for
            analysis.
        num_queries: compute the output of the first `num_queries` tokens
            only (they still attend to all tokens); returns
            `(batch, num_queries, hidden_dim)`. The last layer needs no more
            for a classification from the [CLS] and distillation tokens.

    Example:
    >>> layer = ASTEncoderLayer(64, num_heads=4, intermediate_dim=128)
    >>> tuple(layer(np.zeros((2, 10, 64))).shape)
    (2, 10, 64)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        intermediate_dim,
        layer_norm_epsilon=1e-12,
        dropout=0.0,
        attention_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                f"({num_heads})."
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.intermediate_dim = intermediate_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.attention_dropout = attention_dropout

        def dense(units, name):
            return products.Dense(
                units,
                kernel_initializer="lecun_normal",
                dtype=self.dtype_policy,
                name=name,
            )

        def norm(name):
            return keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype="float32", name=name
            )

        self.norm_before = norm("layernorm_before")
        self.query = dense(hidden_dim, "query")
        self.key = dense(hidden_dim, "key")
        self.value = dense(hidden_dim, "value")
        self.attention_output = dense(hidden_dim, "attention_output")
        self.norm_after = norm("layernorm_after")
        self.intermediate = dense(intermediate_dim, "intermediate")
        self.output_dense = dense(hidden_dim, "output")
        self.attention_dropout_layer = keras.layers.Dropout(
            attention_dropout, dtype=self.dtype_policy
        )
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.norm_before.build(input_shape)
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.attention_output.build(input_shape)
        self.norm_after.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build(
            tuple(input_shape[:-1]) + (self.intermediate_dim,)
        )
        self.built = True

    def _heads(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[1], self.num_heads,
                               self.head_dim))

    def _attention(self, x, training, return_attention_scores, num_queries):
        queries = x if num_queries is None else x[:, :num_queries]
        query = self._heads(self.query(queries))
        key = self._heads(self.key(x))
        value = self._heads(self.value(x))
        scale = self.head_dim**-0.5
        use_dropout = training and self.attention_dropout > 0
        # Training where XLA compiles for a CPU takes the plain softmax: its
        # gradient ran 10-15% faster on TensorFlow than that of the product
        # loop below, and level on JAX (benchmarks/README.md).
        explicit = (return_attention_scores or use_dropout
                    or (training and not _fused_attention()))
        scores = None
        if explicit:
            logits = ops.einsum("bqhd,bkhd->bhqk", query, key) * scale
            scores = ops.softmax(ops.cast(logits, "float32"), axis=-1)
            probabilities = self.attention_dropout_layer(
                ops.cast(scores, query.dtype), training=training
            )
            context = ops.einsum("bhqk,bkhd->bqhd", probabilities, value)
        elif _fused_attention():
            context = _dot_product_attention(query, key, value, scale)
        else:
            context = _attention_products(query, key, value, scale)
        context = ops.reshape(context,
                              (-1, ops.shape(queries)[1], self.hidden_dim))
        return self.attention_output(context), scores

    def call(self, tokens, training=None, return_attention_scores=False,
             num_queries=None):
        residual = tokens if num_queries is None else tokens[:, :num_queries]
        x = self.norm_before(tokens)
        x, scores = self._attention(x, training, return_attention_scores,
                                    num_queries)
        x = self.dropout_layer(x, training=training)
        tokens = ops.cast(x, residual.dtype) + residual

        residual = tokens
        x = self.norm_after(tokens)
        x = self.intermediate(x)
        x = _gelu(x)
        x = self.output_dense(x)
        x = self.dropout_layer(x, training=training)
        tokens = ops.cast(x, residual.dtype) + residual
        if return_attention_scores:
            return tokens, scores
        return tokens

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
            }
        )
        return config
