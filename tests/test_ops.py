"""The kernel tables of `keras_ast.ops`: each backend's entry against the
plain `keras.ops` form, and the plain and generic entries on every
backend."""

import keras
import numpy as np
import pytest

from keras_ast.ops import activations
from keras_ast.ops import attention
from keras_ast.ops import compiler
from keras_ast.ops import dense
from keras_ast.ops import slicing

from conftest import compiled
from conftest import to_numpy

BACKEND = keras.config.backend()
TABLES = {
    "attention": attention.ATTENTION_FUNCTIONS,
    "einsum": dense.EINSUM_FUNCTIONS,
    "matmul": dense.MATMUL_FUNCTIONS,
    "dense": dense.DENSE_FUNCTIONS,
    "gelu": activations.GELU_FUNCTIONS,
    "is_traced": slicing.IS_TRACED,
    "compiled_loops": slicing.COMPILED_LOOPS,
    "slice_tokens": slicing.SLICE_TOKENS,
    "compilers": compiler.COMPILERS,
}


def as_float32(x):
    return to_numpy(keras.ops.cast(x, "float32"))


def tensors(shape, count, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return [keras.ops.convert_to_tensor(
        rng.standard_normal(shape).astype("float32"), dtype=dtype)
        for _ in range(count)]


@pytest.mark.parametrize("name", TABLES)
def test_every_table_covers_the_three_backends(name):
    assert set(TABLES[name]) == {"jax", "tensorflow", "torch"}


# Attention.

def numpy_attention(q, k, v, scale):
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) * scale
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", weights, v), weights


def test_softmax_attention_is_softmax_qk_v():
    q, k, v = tensors((2, 23, 3, 8), 3, seed=3)
    context, probabilities = attention.softmax_attention(q, k, v, 0.4)
    expected, weights = numpy_attention(*map(to_numpy, (q, k, v)), 0.4)
    np.testing.assert_allclose(to_numpy(context), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(probabilities), weights, atol=1e-6)
    assert keras.backend.standardize_dtype(probabilities.dtype) == "float32"
    # Dropout sees the probabilities in the query's dtype.
    zeroed, _ = attention.softmax_attention(
        q, k, v, 0.4, dropout=lambda p: p * 0.0)
    np.testing.assert_array_equal(to_numpy(zeroed), 0.0)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_backend_attention_is_softmax_attention(dtype, training):
    # The current backend's entry (whatever it picks on this device).
    q, k, v = tensors((2, 37, 4, 8), 3, dtype)
    expected, _ = attention.softmax_attention(q, k, v, 0.3)
    entry = attention.ATTENTION_FUNCTIONS[BACKEND]
    got = entry(q, k, v, 0.3, training=training)
    assert keras.backend.standardize_dtype(got.dtype) == dtype
    assert tuple(got.shape) == (2, 37, 4, 8)
    tolerance = 1e-5 if dtype == "float32" else 3e-2
    np.testing.assert_allclose(as_float32(got), as_float32(expected),
                               atol=tolerance)


def test_attention_calls_the_backend_entry(monkeypatch):
    calls = []

    def entry(query, key, value, scale, training=False):
        calls.append((scale, training))
        return query

    monkeypatch.setitem(attention.ATTENTION_FUNCTIONS, BACKEND, entry)
    q = tensors((1, 3, 2, 4), 1)[0]
    assert attention.attention(q, q, q, 0.5, training=None) is q
    assert calls == [(0.5, False)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_attention_is_softmax_attention(dtype):
    q, k, v = tensors((2, 29, 4, 8), 3, dtype, seed=4)
    expected, _ = attention.softmax_attention(q, k, v, 0.3)
    got = attention.fused_attention(q, k, v, 0.3)
    assert keras.backend.standardize_dtype(got.dtype) == dtype
    tolerance = 1e-5 if dtype == "float32" else 3e-2
    np.testing.assert_allclose(as_float32(got), as_float32(expected),
                               atol=tolerance)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_torch_sdpa_attention_is_softmax_attention(dtype):
    if BACKEND != "torch":
        pytest.skip("PyTorch's sdpa")
    q, k, v = tensors((2, 23, 3, 8), 3, dtype, seed=3)
    expected, _ = attention.softmax_attention(q, k, v, 0.4)
    got = attention.torch_sdpa_attention(q, k, v, 0.4)
    assert keras.backend.standardize_dtype(got.dtype) == dtype
    np.testing.assert_allclose(as_float32(got), as_float32(expected),
                               atol=1e-5 if dtype == "float32" else 5e-2)


@pytest.mark.parametrize("softmax_kernel", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_attention_products_are_softmax_attention(dtype, softmax_kernel):
    q, k, v = tensors((2, 37, 4, 8), 3, dtype)
    expected, _ = attention.softmax_attention(q, k, v, 0.3)
    got = attention.attention_products(q, k, v, 0.3,
                                       softmax_kernel=softmax_kernel)
    assert keras.backend.standardize_dtype(got.dtype) == dtype
    tolerance = 1e-5 if dtype == "float32" else 3e-2
    np.testing.assert_allclose(as_float32(got), as_float32(expected),
                               atol=tolerance)


@pytest.mark.parametrize("heads,group", [(4, 1), (4, 2), (4, 4), (3, 2)])
def test_attention_products_by_head_groups(heads, group):
    # Any group of heads (3 heads cannot pair up: one at a time), eager and
    # compiled.
    q, k, v = tensors((3, 29, heads, 8), 3, seed=1)
    expected = to_numpy(attention.softmax_attention(q, k, v, 0.35)[0])
    np.testing.assert_allclose(
        to_numpy(attention.attention_products(q, k, v, 0.35, group=group)),
        expected, atol=1e-5)
    if BACKEND != "torch":  # never runs there; compiles slowly
        np.testing.assert_allclose(to_numpy(compiled(
            lambda *qkv: attention.attention_products(
                *qkv, 0.35, group=group))(q, k, v)), expected, atol=1e-5)


def test_attention_products_batch_unknown_until_run():
    # tf.function with a batch of None: the head groups are a dynamic
    # number of loop steps.
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow traces with an unknown batch here")
    import tensorflow as tf

    spec = tf.TensorSpec((None, 11, 4, 8), "float32")
    function = tf.function(
        lambda q, k, v: attention.attention_products(
            q, k, v, 0.5, softmax_kernel=True),
        input_signature=[spec] * 3, jit_compile=True)
    for batch in (1, 3):
        q, k, v = tensors((batch, 11, 4, 8), 3, seed=2)
        np.testing.assert_allclose(
            function(q, k, v).numpy(),
            to_numpy(attention.softmax_attention(q, k, v, 0.5)[0]),
            atol=1e-5)


# Products.

@pytest.mark.parametrize("run", ["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_backend_products_are_plain_products(dtype, run):
    x, y = tensors((3, 5, 64), 1, dtype)[0], tensors((3, 7, 64), 1, dtype)[0]
    w, b = tensors((64, 24), 1, dtype)[0], tensors((24,), 1, dtype)[0]
    wrap = compiled if run == "compiled" else (lambda fn: fn)
    einsum = dense.EINSUM_FUNCTIONS[BACKEND]
    matmul = dense.MATMUL_FUNCTIONS[BACKEND]
    affine = dense.DENSE_FUNCTIONS[BACKEND]
    scores = wrap(lambda x, y: einsum("gqd,gkd->gqk", x, y))(x, y)
    product = wrap(lambda x, w: matmul(x, w))(x, w)
    with_bias = wrap(lambda x, w, b: affine(x, w, b))(x, w, b)
    without_bias = wrap(lambda x, w: affine(x, w))(x, w)
    # float32 out only where the product is widened; the others keep the
    # operands' dtype.
    standard = keras.backend.standardize_dtype
    widened = dtype == "bfloat16" and compiler.jax_on_cpu()
    assert standard(scores.dtype) == ("float32" if widened else dtype)
    for got in (product, with_bias, without_bias):
        assert standard(got.dtype) == dtype
    # Both accumulate in float32; a bfloat16 result is rounded once.
    tolerance = ({"rtol": 1e-5, "atol": 1e-4} if dtype == "float32"
                 else {"rtol": 1e-2, "atol": 1e-1})
    plain = [dense.plain_einsum("gqd,gkd->gqk", x, y),
             dense.plain_matmul(x, w), dense.plain_dense(x, w, b),
             dense.plain_dense(x, w)]
    for got, expected in zip((scores, product, with_bias, without_bias),
                             plain):
        np.testing.assert_allclose(as_float32(got), as_float32(expected),
                                   **tolerance)
    np.testing.assert_allclose(
        as_float32(plain[0]),
        np.einsum("gqd,gkd->gqk", as_float32(x), as_float32(y)), **tolerance)
    if dtype == "float32" and run == "eager":
        # float32 operands take Keras' own products.
        np.testing.assert_array_equal(to_numpy(product),
                                      to_numpy(keras.ops.matmul(x, w)))


def test_torch_dense_is_plain_dense():
    if BACKEND != "torch":
        pytest.skip("torch.addmm")
    x, = tensors((4, 9, 12), 1)
    w, = tensors((12, 6), 1, seed=1)
    b, = tensors((6,), 1, seed=2)
    np.testing.assert_allclose(to_numpy(dense.torch_dense(x, w, b)),
                               to_numpy(dense.plain_dense(x, w, b)),
                               atol=1e-5)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_dense_is_keras_dense(dtype, use_bias):
    config = dict(units=6, activation="tanh",
                  kernel_initializer="lecun_normal",
                  bias_initializer="random_normal", use_bias=use_bias,
                  dtype=dtype, name="probe")
    ours, theirs = dense.Dense(**config), keras.layers.Dense(**config)
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
    restored = dense.Dense.from_config(ours.get_config())
    assert restored.get_config() == ours.get_config()
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ours))
    assert type(revived) is dense.Dense


def test_widened_products_multiply_bfloat16_operands():
    # The speed of mixed_bfloat16 under XLA on a CPU rests on this: Keras'
    # bfloat16 product first converts both operands to float32, while the
    # widened one hands the bfloat16 operands to YNNPACK as they are.
    if not compiler.jax_on_cpu():
        pytest.skip("products are widened only where XLA compiles for a CPU")
    import jax.numpy as jnp

    x = jnp.ones((64, 96), jnp.bfloat16)
    w = jnp.ones((96, 32), jnp.bfloat16)
    ours = compiled_text(dense.jax_matmul, x, w)
    if "__ynn_fusion" not in ours:
        pytest.skip("this jaxlib does not give products to YNNPACK")
    converted = "f32[64,96]"  # x as float32
    assert converted in compiled_text(lambda x, w: x @ w, x, w)
    assert converted not in ours
    assert compiler.compiler_options("bfloat16") is None  # YNNPACK kept


def compiled_text(function, x, w):
    return (compiler.jit(function, "bfloat16").lower(x, w).compile()
            .as_text())


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_dense_trains_as_keras_dense(dtype):
    # The backend's product has the plain product's gradient: one SGD step
    # moves both layers' weights alike.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 12)).astype("float32")
    y = rng.standard_normal((8, 6)).astype("float32")
    models = []
    for layer_class in (dense.Dense, keras.layers.Dense):
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


# GELU.

@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_backend_gelu_is_plain_gelu(dtype):
    x, = tensors((4, 33), 1, dtype)
    expected = activations.plain_gelu(keras.ops.cast(x, "float32"))
    for function in (activations.GELU_FUNCTIONS[BACKEND],
                     activations.float32_gelu, activations.gelu):
        got = function(x)
        assert keras.backend.standardize_dtype(got.dtype) in (dtype,
                                                              "float32")
        np.testing.assert_allclose(
            as_float32(got), to_numpy(expected),
            atol=1e-6 if dtype == "float32" else 2e-2)
    assert keras.backend.standardize_dtype(
        activations.float32_gelu(x).dtype) == "float32"


# Tracing, slices and compilers.

def test_is_traced_entry():
    x = keras.ops.ones((2, 3))
    assert not slicing.is_traced(x)
    assert slicing.is_traced(keras.KerasTensor((2, 3)))
    seen = []

    def probe(v):
        seen.append(slicing.IS_TRACED[BACKEND](v))
        return v * 2.0

    if BACKEND == "torch":
        import torch

        torch.compile(probe, backend="aot_eager", fullgraph=True)(x)
    else:
        compiled(probe)(x)
    assert seen and all(seen)


def test_examples_per_slice(monkeypatch):
    monkeypatch.setitem(slicing.SLICE_TOKENS, BACKEND, 8192)
    assert slicing.examples_per_slice(1214) == 4  # AudioSet clips
    assert slicing.examples_per_slice(10**6) == 1
    monkeypatch.setitem(slicing.SLICE_TOKENS, BACKEND, 80)
    assert slicing.examples_per_slice(34) == 2


def test_map_slices_eager_and_compiled():
    x = np.arange(5 * 3, dtype="float32").reshape(5, 3)
    seen = []

    def function(part):
        seen.append(tuple(part.shape))
        return keras.ops.sum(part * 2.0, axis=1, keepdims=True)

    expected = (x * 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(to_numpy(slicing.map_slices(function, x, 2)),
                               expected)
    assert seen == [(2, 3), (2, 3), (1, 3)]  # the rest is one more call
    np.testing.assert_allclose(
        to_numpy(compiled(lambda v: slicing.map_slices(function, v, 2))(
            keras.ops.convert_to_tensor(x))), expected)
    seen.clear()
    slicing.map_slices(function, x, 8)
    assert seen == [(5, 3)]  # a batch that fits is one call


def test_backend_compiler_gives_the_eager_values():
    compile_function = compiler.COMPILERS[BACKEND]
    assert compiler.compiler() is compile_function
    if compile_function is None:
        pytest.skip("this backend runs the package's functions eagerly")

    def function(x):
        return keras.ops.tanh(keras.ops.matmul(x, keras.ops.transpose(x)))

    x, = tensors((6, 16), 1)
    np.testing.assert_allclose(to_numpy(compile_function(function)(x)),
                               to_numpy(function(x)), rtol=1e-6, atol=1e-6)


OFF = {compiler.YNN_SETTING: ""}


def test_cpu_options_rule():
    assert compiler.cpu_options("cpu", "x86_64", "0.10.2", None) == OFF
    assert compiler.cpu_options("cpu", "AMD64", "0.11.0", "") == OFF
    # Elsewhere the defaults stay: not measured, or the option is unknown.
    assert compiler.cpu_options("gpu", "x86_64", "0.10.2", None) is None
    assert compiler.cpu_options("cpu", "arm64", "0.10.2", None) is None
    assert compiler.cpu_options("cpu", "x86_64", "0.4.38", None) is None
    assert compiler.cpu_options(
        "cpu", "x86_64", "0.10.2", None, "bfloat16") is None
    # A setting of the user's in XLA_FLAGS wins.
    mine = f"--{compiler.YNN_SETTING}=individual_dot"
    assert compiler.cpu_options("cpu", "x86_64", "0.10.2", mine) is None
    if BACKEND != "jax":
        assert compiler.compiler_options() is None


def test_the_options_take_dots_off_ynnpack():
    if BACKEND != "jax":
        pytest.skip("XLA compile options are JAX's")
    if compiler.compiler_options() is None:
        pytest.skip("no option applies on this platform")
    import jax

    x = np.ones((64, 96), "float32")
    w = np.ones((96, 32), "float32")

    def product(x, w):
        return jax.numpy.tanh(x @ w)

    default = jax.jit(product).lower(x, w).compile().as_text()
    if "__ynn_fusion" not in default:
        pytest.skip("this jaxlib does not give the dot to YNNPACK")
    tuned = compiler.jit(product)
    assert "__ynn_fusion" not in tuned.lower(x, w).compile().as_text()
    np.testing.assert_allclose(tuned(x, w), product(x, w), rtol=1e-6)
