"""Matrix products as the fastest kernels on each backend take them.

- Under `mixed_bfloat16`, Keras multiplies bfloat16 by bfloat16 into
  bfloat16. XLA on a CPU (jaxlib 0.10) computes such a product with its own
  kernels at float32's rate; asked for a float32 result
  (`preferred_element_type`), it hands the product to YNNPACK's bfloat16
  kernels (AMX, AVX512-BF16): 55 against 159 ms for (4856 x 768) @
  (768 x 3072) on the measured Xeon (benchmarks/README.md). Both accumulate
  in float32, so rounding the float32 result to bfloat16 gives what the
  bfloat16 product gives.
- On PyTorch, `Dense` adds its bias inside the product (`torch.addmm`, as
  `nn.Linear` does) instead of in a second pass over the output.

Elsewhere these are `keras.ops`' products unchanged.
"""

import keras
from keras import ops

from keras_ast.ops.compiler import jax_on_cpu


def _widened(operands):
    return jax_on_cpu() and all(
        keras.backend.standardize_dtype(x.dtype) == "bfloat16"
        for x in operands)


def einsum(subscripts, *operands):
    """`ops.einsum`; float32 out where bfloat16 operands meet XLA on a CPU.

    The result's dtype is therefore float32 or the operands' dtype: callers
    cast it to what they need.

    Example:
    >>> x = np.ones((2, 3), "float32")
    >>> tuple(einsum("ij,jk->ik", x, np.ones((3, 4), "float32")).shape)
    (2, 4)
    """
    operands = [ops.convert_to_tensor(x) for x in operands]
    if not _widened(operands):
        return ops.einsum(subscripts, *operands)
    import jax.numpy as jnp

    return jnp.einsum(subscripts, *operands,
                      preferred_element_type=jnp.float32)


def matmul(x, y):
    """`ops.matmul(x, y)` in `x`'s dtype, through a float32 result where
    bfloat16 operands meet XLA on a CPU.

    Example:
    >>> x = np.ones((2, 3), "float32")
    >>> tuple(matmul(x, np.ones((3, 4), "float32")).shape)
    (2, 4)
    """
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    if not _widened((x, y)):
        return ops.matmul(x, y)
    import jax.numpy as jnp

    product = jnp.matmul(x, y, preferred_element_type=jnp.float32)
    return product.astype(x.dtype)


def _addmm(x, kernel, bias):
    """`x @ kernel + bias` on PyTorch as one `torch.addmm`.

    The bias goes into the product's output buffer, as in `nn.Linear`: a
    separate addition writes a second output, 15 ms on 4 AudioSet clips'
    (4856 x 3072) MLP activations, where fresh pages are mapped for it.
    """
    import torch

    x, kernel, bias = (ops.convert_to_tensor(t) for t in (x, kernel, bias))
    flat = torch.addmm(bias, x.reshape(-1, x.shape[-1]), kernel)
    return flat.reshape(x.shape[:-1] + (flat.shape[-1],))


@keras.saving.register_keras_serializable(package="keras_ast")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` with this module's products.

    The same weights, config and quantization as Keras' layer; only the
    float product's kernel differs: widened where XLA compiles for a CPU,
    one `torch.addmm` with the bias on PyTorch.

    Example:
    >>> layer = Dense(4, dtype="mixed_bfloat16")
    >>> y = layer(np.ones((2, 3), "float32"))
    >>> keras.backend.standardize_dtype(y.dtype)
    'bfloat16'
    """

    def call(self, inputs, training=None):
        if self.bias is not None and keras.config.backend() == "torch":
            x = _addmm(inputs, self.kernel, self.bias)
        else:
            x = matmul(inputs, self.kernel)
            if self.bias is not None:
                x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x
