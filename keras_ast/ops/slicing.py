"""A function over a batch, run in slices of a few examples at a time.

Inference on a large batch needs the memory of the whole batch's
activations at once; run in slices, it needs one slice's. Traced on a
backend with a compiled loop (`COMPILED_LOOPS`), the slices are one
`ops.map`, whose buffers the compiler reuses from one slice to the next;
eager, and on PyTorch (whose `ops.map` is a Python loop that TorchDynamo
unrolls slowly), a Python loop. `SLICE_TOKENS` sets each backend's slice
size, and `IS_TRACED` how each backend tells a traced tensor.
"""

import keras
from keras import ops


def _jax_is_traced(x):
    import jax

    return isinstance(x, jax.core.Tracer)


def _tensorflow_is_traced(x):
    import tensorflow as tf

    return not tf.executing_eagerly()


def _torch_is_traced(x):
    import torch

    return torch.compiler.is_compiling()


# Keras backend -> whether a (non-Keras) tensor is being traced.
IS_TRACED = {
    "jax": _jax_is_traced,
    "tensorflow": _tensorflow_is_traced,
    "torch": _torch_is_traced,
}
# Backends whose traced `ops.map` is one compiled loop.
COMPILED_LOOPS = {"jax": True, "tensorflow": True, "torch": False}
# Keras backend -> tokens per slice of an inference batch.
SLICE_TOKENS = {"jax": 8192, "tensorflow": 8192, "torch": 4096}
DEFAULT_SLICE_TOKENS = 8192


def is_traced(x):
    """True where `x` is symbolic (jit, tf.function, functional graphs).

    Examples:
    >>> is_traced(keras.KerasTensor((2, 3)))
    True
    """
    if isinstance(x, keras.KerasTensor):
        return True
    function = IS_TRACED.get(keras.config.backend())
    return bool(function and function(x))


def examples_per_slice(tokens_per_example):
    """The largest power of two of examples whose tokens fit the current
    backend's `SLICE_TOKENS` (at least 1).

    Examples:
    >>> examples_per_slice(8192 // 4)  # on JAX or TensorFlow
    4
    """
    budget = SLICE_TOKENS.get(keras.config.backend(), DEFAULT_SLICE_TOKENS)
    return 1 << max(0, (budget // tokens_per_example).bit_length() - 1)


def map_slices(function, x, size):
    """`function(x)`, computed `size` examples at a time along axis 0.

    `function` must treat examples independently and return one tensor with
    the batch first. A batch of unknown or at most `size` examples is one
    call; the rows left after the whole slices are one more call.

    Examples:
    >>> map_slices(lambda x: x * 2, np.ones((5, 3), "float32"), 2).shape
    (5, 3)
    """
    batch = x.shape[0]
    if not isinstance(batch, int) or batch <= size:
        return function(x)
    whole = batch // size * size
    if is_traced(x) and COMPILED_LOOPS.get(keras.config.backend(), False):
        grouped = ops.reshape(x[:whole], (batch // size, size) + tuple(
            x.shape[1:]))
        mapped = ops.map(function, grouped)
        parts = [ops.reshape(mapped, (whole,) + tuple(mapped.shape[2:]))]
    else:
        parts = [function(x[start:start + size])
                 for start in range(0, whole, size)]
    if whole < batch:
        parts.append(function(x[whole:]))
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=0)
