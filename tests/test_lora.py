"""`ASTBackbone.enable_lora`: only the factors train, on every backend."""

import keras
import numpy as np
import pytest
from conftest import noise
from conftest import tiny_backbone
from conftest import to_numpy

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.models.backbone import LORA_ATTENTION
from keras_ast.models.backbone import LORA_MLP


def random_features(batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal(
        (batch, 64, 128)).astype("float32")


def lora_paths(num_layers, names):
    return sorted(
        f"encoder_layer_{index}/{name}/lora_kernel_{ab}"
        for index in range(num_layers) for name in names for ab in "ab")


@pytest.mark.parametrize("names", [None, LORA_ATTENTION + LORA_MLP,
                                   ("key", "attention_output")])
def test_only_the_factors_train(names):
    backbone = tiny_backbone(num_layers=2)
    count = len(backbone.weights)
    backbone.enable_lora(4, target_layer_names=names)
    expected = lora_paths(2, names or LORA_ATTENTION)
    assert sorted(w.path for w in backbone.trainable_weights) == expected
    assert len(backbone.weights) == count + len(expected)
    for weight in backbone.trainable_weights:
        assert weight.dtype == "float32"
        assert weight.shape[0] == 4 or weight.shape[1] == 4


def test_factors_change_the_output_as_a_merged_kernel():
    backbone = tiny_backbone(num_layers=2)
    features = random_features()
    before = to_numpy(backbone(features)["pooled_output"])
    backbone.enable_lora(4)
    # B starts at zero: the same outputs.
    np.testing.assert_allclose(to_numpy(backbone(features)["pooled_output"]),
                               before, atol=1e-6, rtol=0)
    rng = np.random.default_rng(0)
    merged = tiny_backbone(num_layers=2)
    merged.set_weights([to_numpy(w) for w in backbone.weights
                        if "lora" not in w.path])
    for layer, plain in zip(backbone.encoder_layers, merged.encoder_layers):
        for dense, target in ((layer.query, plain.query),
                              (layer.value, plain.value)):
            b = rng.normal(0, 0.1, dense.lora_kernel_b.shape)
            dense.lora_kernel_b.assign(b.astype("float32"))
            delta = (dense.lora_alpha / dense.lora_rank) * (
                to_numpy(dense.lora_kernel_a) @ to_numpy(dense.lora_kernel_b))
            target.kernel.assign(to_numpy(target.kernel) + delta)
    after = to_numpy(backbone(features)["pooled_output"])
    assert not np.allclose(after, before, atol=1e-3)
    # What the backend's Dense product computes is the merged kernel's.
    expected = to_numpy(merged(features)["pooled_output"])
    np.testing.assert_allclose(after, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        backbone.predict(features, verbose=0)["pooled_output"], expected,
        atol=1e-4, rtol=0)


def test_fit_trains_the_factors_and_head_only(tmp_path):
    keras.utils.set_random_seed(0)
    backbone = tiny_backbone(num_layers=2)
    backbone.enable_lora(4, target_layer_names=LORA_ATTENTION + LORA_MLP)
    classifier = ASTClassifier(
        backbone, 2, preprocessor=ASTAudioConverter(max_length=64))
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    trainable = {w.path for w in classifier.trainable_weights}
    assert trainable == set(lora_paths(2, LORA_ATTENTION + LORA_MLP)) | {
        w.path for w in classifier.head_norm.weights
        + classifier.head_dense.weights}
    before = {w.path: to_numpy(w) for w in classifier.weights}
    waves = np.stack([noise(0.6, seed=i) for i in range(4)])
    classifier.fit(waves, np.array([0, 1, 0, 1]), batch_size=2, epochs=2,
                   verbose=0)
    changed = {w.path for w in classifier.weights
               if not np.array_equal(to_numpy(w), before[w.path])}
    # B moved from zero, so did A; nothing frozen moved.
    assert {p for p in changed if "lora" in p} == set(
        lora_paths(2, LORA_ATTENTION + LORA_MLP))
    assert changed <= trainable
    assert not any(p.endswith("/kernel") and "head" not in p
                   for p in changed)

    # An ordinary preset: the merged kernels, loaded without LoRA.
    logits = classifier.predict(waves, verbose=0)
    preset = str(tmp_path / "preset")
    classifier.save_to_preset(preset)
    loaded = ASTClassifier.from_preset(preset)
    assert not any("lora" in w.path for w in loaded.weights)
    np.testing.assert_allclose(loaded.predict(waves, verbose=0), logits,
                               atol=1e-4, rtol=0)
    plain = ASTBackbone.from_preset(preset)
    assert len(plain.weights) == len(tiny_backbone(num_layers=2).weights)


def test_argument_errors():
    backbone = tiny_backbone()
    for rank in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="rank must be an integer"):
            backbone.enable_lora(rank)
    with pytest.raises(ValueError, match=r"\['mlp'\].*'intermediate'"):
        backbone.enable_lora(4, target_layer_names=["query", "mlp"])
    # Nothing was changed by the refused calls.
    assert len(backbone.trainable_weights) == len(backbone.weights)
