"""from_preset / save_to_preset for both directory formats."""

import json
import os
import pickle

import keras
import numpy as np
import pytest
from conftest import make_reference
from conftest import noise
from conftest import reference_logits

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.ops.patches import adapt_position_embedding


def clips():
    return [noise(1.0, seed=1), noise(0.6, seed=2)]


def test_pytorch_bin_checkpoint(tmp_path):
    directory = str(tmp_path / "bin")
    model, extractor = make_reference("speech_commands", directory,
                                      weights="bin", seed=3)
    assert not os.path.exists(os.path.join(directory, "model.safetensors"))
    classifier = ASTClassifier.from_preset(directory)
    np.testing.assert_allclose(
        classifier.predict(clips(), verbose=0),
        reference_logits(model, extractor, clips()), atol=1e-3,
    )


def test_pickle_that_runs_code_is_refused(tmp_path, reference):
    source, _, _ = reference("speech_commands")
    directory = tmp_path / "evil"
    directory.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (directory / name).write_text((open(os.path.join(source, name))
                                       .read()))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(directory / "pytorch_model.bin", "wb") as f:
        pickle.dump({"weights": Payload()}, f)
    with pytest.raises(ValueError, match="Refusing to load"):
        ASTClassifier.from_preset(str(directory))
    assert not marker.exists()


def test_keras_preset_round_trip(tmp_path, reference):
    directory, model, extractor = reference("speech_commands")
    classifier = ASTClassifier.from_preset(directory)
    expected = classifier.predict(clips(), verbose=0)
    target = str(tmp_path / "preset")
    classifier.save_to_preset(target)
    assert sorted(os.listdir(target)) == [
        "audio_converter.json", "config.json", "labels.json",
        "metadata.json", "model.weights.h5", "task.weights.h5",
    ]
    assert json.load(open(os.path.join(target, "config.json")))[
        "format_version"] == 2
    metadata = json.load(open(os.path.join(target, "metadata.json")))
    assert metadata["parameter_count"] == classifier.count_params()
    # Not left private as the temporary directory it was written in.
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o777 & ~umask
    restored = ASTClassifier.from_preset(target)
    assert restored.labels == classifier.labels
    assert restored.multi_label == classifier.multi_label
    for key in ("max_length", "mean", "std", "num_mel_bins"):
        assert getattr(restored.preprocessor, key) == getattr(
            classifier.preprocessor, key)
    np.testing.assert_allclose(restored.predict(clips(), verbose=0),
                               expected, atol=1e-6)
    # The backbone and converter load from the same directory.
    backbone = ASTBackbone.from_preset(target)
    for ours, theirs in zip(backbone.weights, classifier.backbone.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    converter = ASTAudioConverter.from_preset(target)
    assert converter.mean == pytest.approx(extractor.mean)
    # Saving again over an existing preset replaces it whole.
    restored.save_to_preset(target)
    assert ASTClassifier.from_preset(target).num_classes == 35


def test_backbone_and_new_head_never_read_the_stored_head(tmp_path,
                                                         reference):
    directory, _, _ = reference("speech_commands")
    target = str(tmp_path / "preset")
    classifier = ASTClassifier.from_preset(directory)
    classifier.save_to_preset(target)
    # A head file that no loader may open when it does not need it.
    with open(os.path.join(target, "task.weights.h5"), "wb") as f:
        f.write(b"not an h5 file")
    backbone = ASTBackbone.from_preset(target)
    for ours, theirs in zip(backbone.weights, classifier.backbone.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    fresh = ASTClassifier.from_preset(target, num_classes=3)
    assert fresh.num_classes == 3
    with pytest.raises(Exception):
        ASTClassifier.from_preset(target)  # needs the head: it is broken


def _write_format_version_1(classifier, target):
    """A preset as keras_ast wrote them up to format_version 1."""
    os.makedirs(target)
    classifier.save_weights(os.path.join(target, "model.weights.h5"))
    config = {"format": "keras_ast", "format_version": 1,
              "backbone": classifier.backbone.get_config(),
              "classifier": {"num_classes": classifier.num_classes,
                             "multi_label": classifier.multi_label,
                             "dropout": classifier.dropout}}
    for key in ("name", "trainable"):
        config["backbone"].pop(key)
    for name, data in (("config.json", config),
                       ("labels.json", classifier.labels),
                       ("audio_converter.json",
                        classifier.preprocessor.get_config()),
                       ("metadata.json", {})):
        with open(os.path.join(target, name), "w") as f:
            json.dump(data, f)


def test_format_version_1_presets_still_load(tmp_path, reference):
    directory, _, _ = reference("speech_commands")
    classifier = ASTClassifier.from_preset(directory)
    expected = classifier.predict(clips(), verbose=0)
    target = str(tmp_path / "v1")
    _write_format_version_1(classifier, target)
    restored = ASTClassifier.from_preset(target)
    assert restored.labels == classifier.labels
    np.testing.assert_allclose(restored.predict(clips(), verbose=0),
                               expected, atol=1e-6)
    backbone = ASTBackbone.from_preset(target)
    for ours, theirs in zip(backbone.weights, classifier.backbone.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert ASTClassifier.from_preset(target, num_classes=2).num_classes == 2
    # Saved again, it is written in the current format.
    restored.save_to_preset(str(tmp_path / "v2"))
    assert json.load(open(tmp_path / "v2" / "config.json"))[
        "format_version"] == 2


def test_newer_format_version_is_refused(tmp_path):
    backbone = ASTBackbone(hidden_dim=16, num_layers=1, num_heads=2,
                           intermediate_dim=32, max_length=32)
    target = tmp_path / "preset"
    backbone.save_to_preset(str(target))
    config = json.load(open(target / "config.json"))
    config["format_version"] = 99
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="format_version 99.*Upgrade"):
        ASTBackbone.from_preset(str(target))


def test_backbone_preset_and_new_head(tmp_path, reference):
    directory, _, _ = reference("speech_commands")
    reference_backbone = ASTBackbone.from_preset(directory)
    target = str(tmp_path / "backbone")
    reference_backbone.save_to_preset(target)
    with pytest.raises(ValueError, match="num_classes"):
        ASTClassifier.from_preset(target)
    classifier = ASTClassifier.from_preset(target, num_classes=4,
                                           labels=list("abcd"))
    assert classifier.labels == list("abcd")
    for ours, theirs in zip(classifier.backbone.weights,
                            reference_backbone.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    # A fresh head on a transformers checkpoint keeps its backbone weights.
    fresh = ASTClassifier.from_preset(directory, num_classes=2)
    assert fresh.labels is None and fresh.num_classes == 2
    np.testing.assert_array_equal(
        np.asarray(fresh.backbone.embedding.position_embedding),
        np.asarray(reference_backbone.embedding.position_embedding),
    )


def test_shape_mismatch_names_the_parameter(tmp_path, reference):
    directory, _, _ = reference("speech_commands")
    with pytest.raises(ValueError,
                       match="position_embeddings.*does not fit"):
        ASTClassifier.from_preset(directory, num_mel_bins=64)
    with pytest.raises(ValueError, match="classifier.dense.weight"):
        _load_with_bad_head(directory, tmp_path)


def _load_with_bad_head(directory, tmp_path):
    """A config that claims 36 labels for a 35-label checkpoint."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(directory):
        (broken / name).write_bytes(open(os.path.join(directory, name),
                                         "rb").read())
    config = json.load(open(broken / "config.json"))
    config["id2label"]["35"] = "extra"
    (broken / "config.json").write_text(json.dumps(config))
    return ASTClassifier.from_preset(str(broken))


def test_missing_and_unexpected_parameters(tmp_path, reference):
    directory, _, _ = reference("speech_commands")
    with pytest.raises(ValueError, match="lacks.*encoder.layer.2"):
        ASTBackbone.from_preset(directory, num_layers=3)
    with pytest.raises(ValueError, match="does not have.*encoder.layer.1"):
        ASTBackbone.from_preset(directory, num_layers=1)


def test_keras_preset_that_does_not_fit(tmp_path):
    backbone = ASTBackbone(hidden_dim=16, num_layers=1, num_heads=2,
                           intermediate_dim=32, max_length=32)
    target = str(tmp_path / "preset")
    backbone.save_to_preset(target)
    with pytest.raises(ValueError, match=r"intermediate_dim=32 \(the model "
                       r"has 48\)"):
        ASTBackbone.from_preset(target, intermediate_dim=48)
    with pytest.raises(ValueError, match="num_layers=1"):
        ASTBackbone.from_preset(target, num_layers=2)


def test_not_a_preset(tmp_path):
    with pytest.raises(FileNotFoundError, match="Unknown preset"):
        ASTClassifier.from_preset(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        ASTClassifier.from_preset(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(ValueError, match="not an Audio Spectrogram"):
        ASTClassifier.from_preset(str(tmp_path))


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    backbone = ASTBackbone(hidden_dim=16, num_layers=1, num_heads=2,
                           intermediate_dim=32, max_length=32)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        backbone.save_to_preset(str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


@pytest.mark.parametrize("max_length", [24, 64])
def test_keras_preset_adapts_to_another_max_length(tmp_path, max_length):
    # The loader fits the stored position embeddings to the new patch grid
    # itself; every other weight is the stored one.
    backbone = ASTBackbone(hidden_dim=16, num_layers=1, num_heads=2,
                           intermediate_dim=32, max_length=32,
                           frequency_stride=16, time_stride=4)
    target = str(tmp_path / "preset")
    backbone.save_to_preset(target)
    loaded = ASTBackbone.from_preset(target, max_length=max_length)
    assert loaded.max_length == max_length
    position = loaded.embedding.position_embedding
    expected = adapt_position_embedding(
        keras.ops.convert_to_numpy(backbone.embedding.position_embedding),
        backbone.token_grid, loaded.token_grid)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(position),
                               expected, atol=1e-6)
    others = [(ours, theirs) for ours, theirs in zip(loaded.weights,
                                                      backbone.weights)
              if ours is not position]
    assert len(others) == len(backbone.weights) - 1
    for ours, theirs in others:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))
