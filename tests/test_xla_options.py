"""XLA compile options: the rule, Keras' steps compile with them, and they
take the dots off YNNPACK."""

import keras
import numpy as np
import pytest

from keras_ast.ops import compiler as xla_options
from keras_ast.models.classifier import ASTClassifier

from conftest import tiny_backbone
from conftest import to_numpy

OFF = {xla_options.YNN_SETTING: ""}


def test_cpu_options_rule():
    assert xla_options.cpu_options("cpu", "x86_64", "0.10.2", None) == OFF
    assert xla_options.cpu_options("cpu", "AMD64", "0.11.0", "") == OFF
    # Elsewhere the defaults stay: not measured, or the option is unknown.
    assert xla_options.cpu_options("gpu", "x86_64", "0.10.2", None) is None
    assert xla_options.cpu_options("cpu", "arm64", "0.10.2", None) is None
    assert xla_options.cpu_options("cpu", "x86_64", "0.4.38", None) is None
    # A setting of the user's in XLA_FLAGS wins.
    mine = f"--{xla_options.YNN_SETTING}=individual_dot"
    assert xla_options.cpu_options("cpu", "x86_64", "0.10.2", mine) is None
    if keras.config.backend() != "jax":
        assert xla_options.compiler_options() is None


def test_keras_steps_compile_with_the_options(monkeypatch):
    classifier = ASTClassifier(tiny_backbone(), 3)
    features = np.random.default_rng(0).standard_normal(
        (2, 64, 128)).astype("float32")
    labels = np.eye(3, dtype="float32")[[0, 2]]
    made = []
    if keras.config.backend() == "jax":
        from keras.src.backend.jax import trainer

        original = trainer.jit

        def recording_jit(function, **kwargs):
            made.append(kwargs.get("compiler_options"))
            return original(function, **kwargs)

        monkeypatch.setattr(trainer, "jit", recording_jit)
        monkeypatch.setattr(xla_options, "compiler_options", lambda *_: OFF)
    classifier.fit(features, labels, epochs=1, verbose=0)
    classifier.evaluate(features, labels, verbose=0)
    logits = classifier.predict(features, verbose=0)
    np.testing.assert_allclose(logits, to_numpy(classifier(features)),
                               atol=1e-5)
    if keras.config.backend() == "jax":
        assert made == [OFF, OFF, OFF]  # train, test and predict steps
        assert trainer.jit is recording_jit  # Keras' own name is restored


def test_the_options_take_dots_off_ynnpack():
    if keras.config.backend() != "jax":
        pytest.skip("XLA compile options are JAX's")
    if xla_options.compiler_options() is None:
        pytest.skip("no option applies on this platform")
    import jax

    x = np.ones((64, 96), "float32")
    w = np.ones((96, 32), "float32")

    def product(x, w):
        return jax.numpy.tanh(x @ w)

    default = jax.jit(product).lower(x, w).compile().as_text()
    if "__ynn_fusion" not in default:
        pytest.skip("this jaxlib does not give the dot to YNNPACK")
    tuned = xla_options.jit(product)
    assert "__ynn_fusion" not in tuned.lower(x, w).compile().as_text()
    np.testing.assert_allclose(tuned(x, w), product(x, w), rtol=1e-6)


def test_steps_compile_for_the_model_compute_dtype(monkeypatch):
    # A mixed_bfloat16 model's steps ask for bfloat16's options (YNNPACK
    # kept: its bfloat16 products are the fast ones), a float32 model's for
    # float32's.
    asked = []

    def recording(compute_dtype="float32"):
        asked.append(compute_dtype)
        return None

    monkeypatch.setattr(xla_options, "compiler_options", recording)
    features = np.random.default_rng(0).standard_normal(
        (2, 64, 128)).astype("float32")
    for dtype in ("mixed_bfloat16", "float32"):
        classifier = ASTClassifier(tiny_backbone(dtype=dtype), 3)
        classifier.predict(features, verbose=0)
    assert asked == ["bfloat16", "float32"]
    assert xla_options.cpu_options(
        "cpu", "x86_64", "0.10.2", None, "bfloat16") is None
