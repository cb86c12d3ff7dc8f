"""A function over a batch, run in slices of a few examples at a time.

Inference on a large batch needs the memory of the whole batch's
activations at once; run in slices, it needs one slice's. Compiled (`jit`,
`tf.function`), the slices are one loop (`ops.map`), whose buffers XLA
reuses from one slice to the next; eager (and on PyTorch), a Python loop.
"""

import keras
from keras import ops


def is_traced(x):
    """True where `x` is symbolic (jit, tf.function, functional graphs)."""
    if isinstance(x, keras.KerasTensor):
        return True
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "torch":
        import torch

        return torch.compiler.is_compiling()
    return False


def map_slices(function, x, size):
    """`function(x)`, computed `size` examples at a time along axis 0.

    `function` must treat examples independently and return one tensor with
    the batch first. A batch of unknown or at most `size` examples is one
    call; the rows left after the whole slices are one more call.

    Example:
    >>> map_slices(lambda x: x * 2, np.ones((5, 3), "float32"), 2).shape
    (5, 3)
    """
    batch = x.shape[0]
    if not isinstance(batch, int) or batch <= size:
        return function(x)
    whole = batch // size * size
    # PyTorch has no compiled loop: its `ops.map` is a Python loop too,
    # which TorchDynamo unrolls (slowly, through `ops.scan`).
    if is_traced(x) and keras.config.backend() != "torch":
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
