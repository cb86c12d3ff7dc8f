"""Matrix products, each backend's kernel from one table per op.

- JAX (`EINSUM_FUNCTIONS`, `MATMUL_FUNCTIONS`, `DENSE_FUNCTIONS`): where
  XLA compiles for a CPU and both operands are bfloat16, the product asks
  for a float32 result (`preferred_element_type`), which XLA hands to
  YNNPACK's bfloat16 kernels instead of computing it with its own at
  float32's rate. Both accumulate in float32, so rounding the float32
  result to bfloat16 gives what the bfloat16 product gives.
- PyTorch (`DENSE_FUNCTIONS`): `x @ kernel + bias` is one `torch.addmm`,
  the bias written into the product's output, as `nn.Linear` does.
- Elsewhere, and for other dtypes: `keras.ops`' products unchanged.

Each table maps a Keras backend to its function; a backend outside a
table uses the plain `keras.ops` form.
"""

import keras
from keras import ops

from keras_ast.ops.compiler import jax_on_cpu


def _widened(operands):
    return jax_on_cpu() and all(
        keras.backend.standardize_dtype(x.dtype) == "bfloat16"
        for x in operands)


def plain_einsum(subscripts, *operands):
    """`ops.einsum`."""
    return ops.einsum(subscripts, *operands)


def jax_einsum(subscripts, *operands):
    """`ops.einsum`; float32 out where bfloat16 meets XLA on a CPU."""
    operands = [ops.convert_to_tensor(x) for x in operands]
    if not _widened(operands):
        return ops.einsum(subscripts, *operands)
    import jax.numpy as jnp

    return jnp.einsum(subscripts, *operands,
                      preferred_element_type=jnp.float32)


def plain_matmul(x, y):
    """`ops.matmul`."""
    return ops.matmul(x, y)


def jax_matmul(x, y):
    """`ops.matmul` in `x`'s dtype, through a float32 result where
    bfloat16 meets XLA on a CPU."""
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    if not _widened((x, y)):
        return ops.matmul(x, y)
    import jax.numpy as jnp

    product = jnp.matmul(x, y, preferred_element_type=jnp.float32)
    return product.astype(x.dtype)


def plain_dense(x, kernel, bias=None):
    """`x @ kernel (+ bias)` in `keras.ops`."""
    y = ops.matmul(x, kernel)
    return y if bias is None else ops.add(y, bias)


def jax_dense(x, kernel, bias=None):
    """`plain_dense` with `jax_matmul`'s product."""
    y = jax_matmul(x, kernel)
    return y if bias is None else ops.add(y, bias)


def torch_dense(x, kernel, bias=None):
    """`x @ kernel + bias` as one `torch.addmm` (PyTorch backend only)."""
    if bias is None:
        return ops.matmul(x, kernel)
    import torch

    x, kernel, bias = (ops.convert_to_tensor(t) for t in (x, kernel, bias))
    flat = torch.addmm(bias, x.reshape(-1, x.shape[-1]), kernel)
    return flat.reshape(x.shape[:-1] + (flat.shape[-1],))


EINSUM_FUNCTIONS = {
    "jax": jax_einsum,
    "tensorflow": plain_einsum,
    "torch": plain_einsum,
}
MATMUL_FUNCTIONS = {
    "jax": jax_matmul,
    "tensorflow": plain_matmul,
    "torch": plain_matmul,
}
DENSE_FUNCTIONS = {
    "jax": jax_dense,
    "tensorflow": plain_dense,
    "torch": torch_dense,
}


def einsum(subscripts, *operands):
    """The current backend's `ops.einsum` (`EINSUM_FUNCTIONS`).

    The result's dtype is the operands' or float32 (a widened product):
    callers cast it to what they need.

    Examples:
    >>> x = np.ones((2, 3), "float32")
    >>> tuple(einsum("ij,jk->ik", x, np.ones((3, 4), "float32")).shape)
    (2, 4)
    """
    function = EINSUM_FUNCTIONS.get(keras.config.backend(), plain_einsum)
    return function(subscripts, *operands)


def matmul(x, y):
    """The current backend's `ops.matmul(x, y)` (`MATMUL_FUNCTIONS`), in
    `x`'s dtype.

    Examples:
    >>> x = np.ones((2, 3), "float32")
    >>> tuple(matmul(x, np.ones((3, 4), "float32")).shape)
    (2, 4)
    """
    function = MATMUL_FUNCTIONS.get(keras.config.backend(), plain_matmul)
    return function(x, y)


def dense(x, kernel, bias=None):
    """The current backend's `x @ kernel + bias` (`DENSE_FUNCTIONS`).

    Examples:
    >>> x = np.ones((2, 3), "float32")
    >>> tuple(dense(x, np.ones((3, 4), "float32"), np.zeros(4)).shape)
    (2, 4)
    """
    function = DENSE_FUNCTIONS.get(keras.config.backend(), plain_dense)
    return function(x, kernel, bias)


@keras.saving.register_keras_serializable(package="keras_ast")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` whose float product is `dense`'s.

    The same weights, config and quantization as Keras' layer; only the
    kernel of the float product differs (see the module doc).

    Examples:
    >>> layer = Dense(4, dtype="mixed_bfloat16")
    >>> y = layer(np.ones((2, 3), "float32"))
    >>> keras.backend.standardize_dtype(y.dtype)
    'bfloat16'
    """

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantizes the weights as `keras.layers.Dense.quantize` does.

        Keras' layer refuses its subclasses (`type_check`); this one keeps
        Keras' weights and quantized call, so it takes every mode of
        Keras' `Dense`. Quantized modes run Keras' `quantized_call`, not
        `call`.

        Args:
            mode: `"int8"`, `"int4"`, `"float8"`, `"gptq"` or `"awq"`.
            type_check: ignored (Keras' check of the layer's class).
            config: an optional `keras.quantizers.QuantizationConfig`.

        Examples:
        >>> layer = Dense(4)
        >>> layer.build((None, 3))
        >>> layer.quantize("int8")
        >>> layer.quantization_mode
        'int8'
        """
        del type_check  # a subclass with Keras' own quantized path
        super().quantize(mode, type_check=False, config=config)

    def load_own_variables(self, store):
        """Keras' loading, refusing the weights of a quantized layer while
        this one is float.

        Args:
            store: the layer's stored variables, by position.

        Raises:
            ValueError: the store holds more variables than this float
                layer (a quantized layer's kernel, scales...), as when
                the weights of a model quantized with `quantize` load into
                a float one.
        """
        expected = 1 if self.bias is None else 2
        if self.quantization_mode is None and not self.lora_enabled:
            count = len(store.keys())
            if count > expected:
                kernel = store["0"]
                self._quantized_store = ValueError(
                    f"Dense layer {self.path!r} is float ({expected} "
                    "variables), but its stored weights are those of a "
                    f"quantized layer ({count} variables, kernel "
                    f"{kernel.dtype} {tuple(kernel.shape)}): they were "
                    "saved after `quantize`. Quantize the model the same "
                    "way before loading them, or save it as a preset "
                    "(`save_to_preset`) or a `.keras` file, which record "
                    "the quantization."
                )
            elif count:
                self._quantized_store = None
            # Keras may visit the layer again under another path, with
            # nothing stored there: the cause stays the message.
            error = getattr(self, "_quantized_store", None)
            if error is not None:
                raise error
        super().load_own_variables(store)

    def call(self, inputs, training=None):
        x = dense(inputs, self.kernel, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x
