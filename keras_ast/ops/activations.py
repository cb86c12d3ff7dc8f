"""The exact (erf) GELU, each backend's form from one table.

Under mixed precision the GELU's input is bfloat16. TensorFlow's and
XLA's bfloat16 erf are slower than their float32 one, so there the input
is cast to float32 first (and the result stays float32). PyTorch's
bfloat16 kernel already computes in float32 internally, so there the
input's dtype is kept. `GELU_FUNCTIONS` maps a Keras backend to its form;
a backend outside it uses `float32_gelu`.
"""

import keras
from keras import ops


def plain_gelu(x):
    """`keras.activations.gelu(x, approximate=False)`, in `x`'s dtype."""
    return keras.activations.gelu(x, approximate=False)


def float32_gelu(x):
    """The exact GELU computed, and returned, in float32."""
    return plain_gelu(ops.cast(x, "float32"))


GELU_FUNCTIONS = {
    "jax": float32_gelu,
    "tensorflow": float32_gelu,
    "torch": plain_gelu,
}


def gelu(x):
    """The current backend's exact GELU (`GELU_FUNCTIONS`).

    Returns float32 or `x`'s dtype: callers cast it to what they need.

    Examples:
    >>> float(gelu(np.float32(0.0)))
    0.0
    """
    return GELU_FUNCTIONS.get(keras.config.backend(), float32_gelu)(x)
