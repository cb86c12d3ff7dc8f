"""Inference in slices: the same outputs as one call, a slice at a time."""

import keras
import numpy as np
import pytest
from conftest import compiled
from conftest import tiny_backbone
from conftest import to_numpy

from keras_ast.models.classifier import ASTClassifier
from keras_ast.ops import slicing


@pytest.fixture
def two_clip_slices(monkeypatch):
    # Tiny backbones have 34 tokens a clip: 80 tokens make slices of 2.
    monkeypatch.setitem(slicing.SLICE_TOKENS,
                        keras.config.backend(), 80)


def test_backbone_pooled_output_in_slices(two_clip_slices):
    backbone = tiny_backbone(num_layers=2)
    assert backbone.inference_slice == 2
    features = np.random.default_rng(0).standard_normal(
        (5, 64, 128)).astype("float32")
    whole = to_numpy(backbone(features)["pooled_output"])  # not sliced
    batches = []
    layer = backbone.encoder_layers[0]
    call = layer.call

    def recorded(tokens, *args, **kwargs):
        batches.append(tokens.shape[0])
        return call(tokens, *args, **kwargs)

    layer.call = recorded
    sliced = to_numpy(backbone.pooled_output(features))
    assert batches == [2, 2, 1]
    np.testing.assert_allclose(sliced, whole, atol=1e-5)
    layer.call = call
    # Compiled, JAX and TF loop over the slices (`ops.map`). PyTorch runs
    # the eager loop above there too, and compiling a model takes minutes.
    if keras.config.backend() != "torch":
        jitted = compiled(lambda f: backbone.pooled_output(f))
        np.testing.assert_allclose(
            to_numpy(jitted(keras.ops.convert_to_tensor(features))), whole,
            atol=1e-5)
    # Training runs the whole batch (slices are for inference).
    batches.clear()
    layer.call = recorded
    backbone.pooled_output(features, training=True)
    assert batches == [5]


def test_classifier_predict_in_slices(two_clip_slices):
    classifier = ASTClassifier(tiny_backbone(), 3)
    features = np.random.default_rng(1).standard_normal(
        (7, 64, 128)).astype("float32")
    logits = classifier.predict(features, batch_size=7, verbose=0)
    pooled = to_numpy(classifier.backbone(features)["pooled_output"])
    expected = to_numpy(classifier.head_dense(classifier.head_norm(pooled)))
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_slices_bound_xla_buffers(monkeypatch):
    if keras.config.backend() != "jax":
        pytest.skip("XLA's buffer sizes are read from JAX's compiler")
    import jax

    backbone = tiny_backbone()
    features = jax.ShapeDtypeStruct((16, 64, 128), np.float32)
    values = [v.value for v in backbone.trainable_variables]

    def temp_bytes():
        def pooled(values, features):
            with keras.StatelessScope(state_mapping=list(zip(
                    backbone.trainable_variables, values))):
                return backbone.pooled_output(features)

        return jax.jit(pooled).lower(values, features).compile(
        ).memory_analysis().temp_size_in_bytes

    monkeypatch.setitem(slicing.SLICE_TOKENS, "jax", 10**9)
    whole = temp_bytes()
    monkeypatch.setitem(slicing.SLICE_TOKENS,
                        keras.config.backend(), 80)
    assert temp_bytes() < whole / 3  # 2 clips at a time, not 16
