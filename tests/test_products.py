"""The package's products (bfloat16 with float32 results under XLA on a
CPU, the bias inside the product on PyTorch): the same values as Keras'
products, the same layer as Keras' Dense, and bfloat16 operands that reach
YNNPACK as they are."""

import keras
import numpy as np
import pytest

from keras_ast.ops import dense as products
from keras_ast.ops import compiler as xla_options

from conftest import compiled
from conftest import to_numpy


def bfloat16(rng, shape):
    return keras.ops.cast(rng.standard_normal(shape).astype("float32"),
                          "bfloat16")


def as_float32(x):
    return to_numpy(keras.ops.cast(x, "float32"))


@pytest.mark.parametrize("run", ["eager", "compiled"])
def test_products_give_keras_values(run):
    rng = np.random.default_rng(0)
    x, y = bfloat16(rng, (3, 5, 64)), bfloat16(rng, (3, 7, 64))
    w = bfloat16(rng, (64, 24))
    wrap = compiled if run == "compiled" else (lambda fn: fn)
    scores = wrap(lambda x, y: products.einsum("gqd,gkd->gqk", x, y))(x, y)
    dense = wrap(products.matmul)(x, w)
    # float32 out only where the product is widened; matmul keeps x's dtype.
    dtype = keras.backend.standardize_dtype
    widened = xla_options.jax_on_cpu()
    assert dtype(scores.dtype) == ("float32" if widened else "bfloat16")
    assert dtype(dense.dtype) == "bfloat16"
    expected = np.einsum("gqd,gkd->gqk", as_float32(x), as_float32(y))
    # Both accumulate in float32; a bfloat16 result is rounded once.
    np.testing.assert_allclose(as_float32(scores), expected, rtol=1e-2,
                               atol=1e-1)
    np.testing.assert_allclose(as_float32(dense),
                               as_float32(x) @ as_float32(w),
                               rtol=1e-2, atol=1e-1)
    np.testing.assert_allclose(
        as_float32(dense), as_float32(keras.ops.matmul(x, w)), rtol=1e-2,
        atol=1e-1)
    # float32 operands take Keras' own products.
    x32, w32 = as_float32(x), as_float32(w)
    np.testing.assert_array_equal(to_numpy(products.matmul(x32, w32)),
                                  to_numpy(keras.ops.matmul(x32, w32)))


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_dense_is_keras_dense(dtype, use_bias):
    config = dict(units=6, activation="tanh",
                  kernel_initializer="lecun_normal",
                  bias_initializer="random_normal", use_bias=use_bias,
                  dtype=dtype, name="probe")
    ours, theirs = products.Dense(**config), keras.layers.Dense(**config)
    x = np.random.default_rng(1).standard_normal((4, 9, 12)).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    tolerance = 0 if dtype == "float32" else 2e-2
    # Tokens, a 2-D batch, and a strided slice (the last layer's queries).
    for inputs in (x, x[0], x[:, :2]):
        got, expected = ours(inputs), theirs(inputs)
        assert got.dtype == expected.dtype
        assert tuple(got.shape) == inputs.shape[:-1] + (6,)
        np.testing.assert_allclose(as_float32(got), as_float32(expected),
                                   atol=tolerance)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    restored = products.Dense.from_config(ours.get_config())
    assert restored.get_config() == ours.get_config()
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ours))
    assert type(revived) is products.Dense


def test_widened_products_multiply_bfloat16_operands():
    # The speed of mixed_bfloat16 under XLA on a CPU rests on this: Keras'
    # bfloat16 product first converts both operands to float32 (a float32
    # product: XLA's own kernels or YNNPACK's float32 ones), while the
    # widened one hands the bfloat16 operands to YNNPACK as they are.
    if not xla_options.jax_on_cpu():
        pytest.skip("products are widened only where XLA compiles for a CPU")
    import jax.numpy as jnp

    x = jnp.ones((64, 96), jnp.bfloat16)
    w = jnp.ones((96, 32), jnp.bfloat16)
    ours = compiled_text(products.matmul, x, w)
    if "__ynn_fusion" not in ours:
        pytest.skip("this jaxlib does not give products to YNNPACK")
    converted = "f32[64,96]"  # x as float32
    assert converted in compiled_text(lambda x, w: x @ w, x, w)
    assert converted not in ours
    assert xla_options.compiler_options("bfloat16") is None  # YNNPACK kept


def compiled_text(function, x, w):
    return (xla_options.jit(function, "bfloat16").lower(x, w).compile()
            .as_text())


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_dense_trains_as_keras_dense(dtype):
    # The widened product's gradient is the plain product's: one SGD step
    # moves both layers' weights alike.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 12)).astype("float32")
    y = rng.standard_normal((8, 6)).astype("float32")
    models = []
    for layer_class in (products.Dense, keras.layers.Dense):
        model = keras.Sequential([keras.Input((12,)),
                                  layer_class(6, dtype=dtype)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        models.append(model)
    ours, theirs = models
    theirs.set_weights(ours.get_weights())
    before = ours.get_weights()
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    tolerance = 1e-6 if dtype == "float32" else 2e-3
    for got, expected, start in zip(ours.get_weights(), theirs.get_weights(),
                                    before):
        step = expected - start
        assert np.abs(step).max() > 0.01  # the step moved them
        np.testing.assert_allclose(got - start, step, atol=tolerance)
