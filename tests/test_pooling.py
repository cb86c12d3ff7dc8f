"""`ASTClassifier(pooling=...)`: what the head reads, kept in presets."""

import json
import os

import keras
import numpy as np
import pytest
from test_pipelines import write_tone_source

from conftest import noise
from conftest import tiny_backbone
from conftest import to_numpy
from keras_ast import ASTAudioConverter
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.data.shards import make_shards
from keras_ast.models.backbone import pruning_layer
from keras_ast.presets import io as preset_io

# Two layers: token pruning after the first, one layer on the kept tokens.
NUM_LAYERS = 2


def features_classifier(pooling="cls", seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    classifier = ASTClassifier(tiny_backbone(num_layers=NUM_LAYERS), 3,
                               pooling=pooling, **kwargs)
    # Logits of order one, so that a tolerance means something.
    kernel = classifier.head_dense.kernel
    kernel.assign(np.random.default_rng(seed).normal(
        0, 0.5, kernel.shape).astype("float32"))
    return classifier


def random_features(batch=3, seed=0):
    return np.random.default_rng(seed).standard_normal(
        (batch, 64, 128)).astype("float32")


def head(classifier, pooled):
    return to_numpy(classifier.head_dense(classifier.head_norm(pooled)))


def sequence_output(classifier, features):
    return to_numpy(classifier.backbone(features)["sequence_output"])


def test_cls_is_the_mean_of_the_two_special_tokens():
    classifier = features_classifier("cls")
    features = random_features()
    tokens = sequence_output(classifier, features)
    expected = head(classifier, (tokens[:, 0] + tokens[:, 1]) / 2.0)
    logits = classifier.predict(features, verbose=0)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert classifier.pooling == "cls"  # the default


def test_mean_is_the_mean_of_the_patch_tokens():
    classifier = features_classifier("mean")
    features = random_features()
    tokens = sequence_output(classifier, features)
    expected = head(classifier, tokens[:, 2:].mean(axis=1))
    logits = classifier.predict(features, verbose=0)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    cls_logits = head(classifier, (tokens[:, 0] + tokens[:, 1]) / 2.0)
    assert np.abs(logits - cls_logits).max() > 1e-2  # another model
    # The backbone's call keeps "cls" in its outputs dict.
    np.testing.assert_allclose(
        to_numpy(classifier.backbone(features)["pooled_output"]),
        (tokens[:, 0] + tokens[:, 1]) / 2.0, atol=1e-5)


def pruned_mean_logits(classifier, features, token_keep):
    """Token pruning written out, then the mean of the kept patch tokens."""
    backbone = classifier.backbone
    after = pruning_layer(backbone.num_layers)
    out = backbone.hidden_states(features)
    maps = to_numpy(out["attentions"][after - 1])  # (batch, heads, q, k)
    cls_attention = maps[:, :, :2].mean(axis=(1, 2))[:, 2:]
    count = backbone.kept_tokens(token_keep)
    top = np.argsort(-cls_attention, axis=-1, kind="stable")[:, :count]
    tokens = to_numpy(out["hidden_states"][after])
    kept = np.take_along_axis(tokens, top[:, :, None] + 2, axis=1)
    x = np.concatenate([tokens[:, :2], kept], axis=1)
    for index in range(after, backbone.num_layers):
        x = backbone.encoder_layers[index](x)
    x = to_numpy(backbone.final_norm(x))
    assert x.shape[1] == 2 + count
    return head(classifier, x[:, 2:].mean(axis=1))


def test_mean_with_token_pruning_averages_the_kept_tokens():
    classifier = features_classifier("mean", token_keep=0.5)
    features = random_features()
    expected = pruned_mean_logits(classifier, features, 0.5)
    np.testing.assert_allclose(classifier.predict(features, verbose=0),
                               expected, atol=1e-5)


def test_mean_under_patchout_averages_the_kept_tokens():
    # Patchout leaving one time column and one frequency row: one patch
    # token, so the mean is that token, whichever patchout chose.
    backbone = tiny_backbone(num_layers=NUM_LAYERS, patchout_time=3,
                             patchout_frequency=7)
    assert backbone.token_grid == (8, 4)
    features = random_features()
    pooled = to_numpy(backbone.pooled_output(features, training=True,
                                             pooling="mean"))
    candidates = []
    # Every single patch token the patchout could have kept.
    for token in range(8 * 4):
        x = backbone.embedding(features)
        x = keras.ops.concatenate([x[:, :2], x[:, 2 + token:3 + token]], 1)
        for layer in backbone.encoder_layers:
            x = layer(x)
        candidates.append(to_numpy(backbone.final_norm(x))[:, 2])
    errors = [np.abs(pooled - candidate).max() for candidate in candidates]
    assert min(errors) < 1e-5


def test_mean_keeps_the_dtype_of_cls_under_mixed_precision():
    backbone = tiny_backbone(num_layers=NUM_LAYERS, dtype="mixed_bfloat16")
    features = random_features()
    dtypes = [keras.backend.standardize_dtype(
        backbone.pooled_output(features, pooling=pooling).dtype)
        for pooling in ("cls", "mean")]
    assert dtypes[0] == dtypes[1]


def test_config_round_trip_and_attribute():
    classifier = features_classifier("mean")
    config = classifier.get_config()
    assert config["pooling"] == "mean"
    restored = ASTClassifier.from_config(config)
    assert restored.pooling == "mean"
    restored.set_weights(classifier.get_weights())
    features = random_features()
    expected = classifier.predict(features, verbose=0)
    np.testing.assert_allclose(restored.predict(features, verbose=0),
                               expected, atol=1e-6)
    # Setting the attribute takes effect at the next predict.
    restored.pooling = "cls"
    tokens = sequence_output(restored, features)
    np.testing.assert_allclose(
        restored.predict(features, verbose=0),
        head(restored, (tokens[:, 0] + tokens[:, 1]) / 2.0), atol=1e-5)


@pytest.mark.parametrize("value", ["max", "CLS", None, 1])
def test_an_unknown_pooling_is_refused(value, tmp_path):
    with pytest.raises(ValueError, match="pooling"):
        ASTClassifier(tiny_backbone(), 3, pooling=value)
    classifier = features_classifier()
    with pytest.raises(ValueError, match=repr(value)):
        classifier.pooling = value
    assert classifier.pooling == "cls"
    with pytest.raises(ValueError, match=repr(value)):
        classifier.backbone.pooled_output(random_features(1),
                                          pooling=value)
    if value is not None:  # None: no recommendation
        with pytest.raises(ValueError, match=repr(value)):
            preset_io.save_preset(tmp_path / "p", classifier.backbone,
                                  pooling=value)
        assert not (tmp_path / "p").exists()


def test_a_classifier_preset_keeps_its_pooling(tmp_path):
    features = random_features()
    for pooling in ("cls", "mean"):
        classifier = features_classifier(pooling)
        path = str(tmp_path / pooling)
        classifier.save_to_preset(path)
        restored = ASTClassifier.from_preset(path, preprocessor=False)
        assert restored.pooling == pooling
        np.testing.assert_allclose(
            restored.predict(features, verbose=0),
            classifier.predict(features, verbose=0), atol=1e-6)
        # A new head on it keeps the stored pooling.
        other = ASTClassifier.from_preset(path, num_classes=5)
        assert other.pooling == pooling
        # ... unless told.
        told = "cls" if pooling == "mean" else "mean"
        assert ASTClassifier.from_preset(
            path, preprocessor=False, pooling=told).pooling == told
    # A "cls" head is written as every earlier preset, which older
    # keras_ast reads; a "mean" head needs a reader that knows pooling.
    cls_config = json.load(open(os.path.join(tmp_path, "cls",
                                             "config.json")))
    mean_config = json.load(open(os.path.join(tmp_path, "mean",
                                              "config.json")))
    assert "pooling" not in cls_config["classifier"]
    assert cls_config["format_version"] == preset_io.FORMAT_VERSION
    assert mean_config["classifier"]["pooling"] == "mean"
    assert mean_config["format_version"] == preset_io.POOLING_FORMAT_VERSION


def test_a_backbone_preset_may_recommend_mean(tmp_path):
    backbone = tiny_backbone(num_layers=NUM_LAYERS)
    recommended = str(tmp_path / "ssl")
    preset_io.save_preset(recommended, backbone=backbone, pooling="mean")
    plain = str(tmp_path / "plain")
    backbone.save_to_preset(plain)
    assert preset_io.load_preset(recommended).default_pooling() == "mean"
    assert preset_io.load_preset(plain).default_pooling() is None
    assert ASTClassifier.from_preset(recommended,
                                     num_classes=3).pooling == "mean"
    assert ASTClassifier.from_preset(recommended, num_classes=3,
                                     pooling="cls").pooling == "cls"
    assert ASTClassifier.from_preset(plain, num_classes=3).pooling == "cls"
    with pytest.raises(ValueError, match="'max'"):
        ASTClassifier.from_preset(recommended, num_classes=3, pooling="max")


def test_embed_follows_the_pooling():
    keras.utils.set_random_seed(1)
    classifier = ASTClassifier(tiny_backbone(num_layers=NUM_LAYERS), 3,
                               preprocessor=ASTAudioConverter(max_length=64),
                               pooling="mean")
    clip = noise(0.64, seed=3)
    features = classifier.preprocessor(clip[None])
    for pooling in ("mean", "cls"):
        classifier.pooling = pooling
        expected = to_numpy(classifier.backbone.pooled_output(
            features, pooling=pooling))[0]
        np.testing.assert_allclose(
            classifier.embed(clip, sampling_rate=16000), expected, atol=1e-5)
    tokens = to_numpy(classifier.backbone(features)["sequence_output"])
    np.testing.assert_allclose(classifier.embed(clip, sampling_rate=16000),
                               (tokens[0, 0] + tokens[0, 1]) / 2.0,
                               atol=1e-5)


def test_train_command_pooling_flag(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--preset", "p", "--train", "t", "--output", "o",
                  "--pooling", "max"])
    assert "invalid choice: 'max'" in capsys.readouterr().err
    write_tone_source(tmp_path / "source")
    shards = str(tmp_path / "shards")
    make_shards(str(tmp_path / "source"), shards, format="tfrecord",
                num_workers=1, progress=False)
    preset = str(tmp_path / "backbone")
    tiny_backbone().save_to_preset(preset)  # no recommendation: "cls"
    output = str(tmp_path / "run")
    assert cli.main([
        "train", "--preset", preset, "--train", shards, "--output", output,
        "--epochs", "1", "--batch-size", "4", "--no-mixup",
        "--pooling", "mean"]) == 0
    restored = ASTClassifier.from_preset(os.path.join(output, "preset"))
    assert restored.pooling == "mean"
