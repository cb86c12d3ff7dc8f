"""ASTClassifier: parity with ASTForAudioClassification, training, errors."""

import warnings

import keras
import numpy as np
import pytest
from conftest import CONFIGS
from conftest import clip_of
from conftest import noise
from conftest import reference_logits
from conftest import tiny_backbone
from layer_testing import dtype_policy
from layer_testing import run_layer_test

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.models.losses import SoftmaxAccuracy
from keras_ast.models.losses import SoftmaxCrossentropy


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_from_features_match_reference(reference, name):
    import torch

    directory, model, _ = reference(name)
    classifier = ASTClassifier.from_preset(directory, preprocessor=False)
    rng = np.random.default_rng(1)
    features = rng.standard_normal(
        (2, classifier.backbone.max_length, 128)
    ).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(features)).logits.numpy()
    got = classifier.predict(features, verbose=0)
    assert got.shape == (2, CONFIGS[name]["num_labels"])
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_from_waveforms_match_reference(reference, speech, name):
    directory, model, extractor = reference(name)
    classifier = ASTClassifier.from_preset(directory)
    clips = [clip_of(speech[0], 0.5), clip_of(speech[1], 4.0),
             clip_of(speech[2], 12.0), noise(2.0, scale=0.2)]
    expected = reference_logits(model, extractor, clips)
    # A list of clips of different lengths, each scored as if alone.
    got = classifier.predict(clips, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    # Same-length batch as a plain array.
    same = [clip_of(speech[0], 1.5), noise(1.5, seed=3)]
    np.testing.assert_allclose(
        classifier.predict(np.stack(same), verbose=0),
        reference_logits(model, extractor, same), atol=1e-3,
    )


def test_preset_metadata(reference):
    directory, model, extractor = reference("speech_commands")
    classifier = ASTClassifier.from_preset(directory)
    assert classifier.labels == [f"class_{i}" for i in range(35)]
    assert classifier.multi_label is False
    assert classifier.preprocessor.mean == pytest.approx(extractor.mean)
    assert classifier.preprocessor.std == pytest.approx(extractor.std)
    assert classifier.preprocessor.max_length == 128
    audioset = ASTClassifier.from_preset(reference("audioset")[0])
    assert audioset.multi_label is True
    assert audioset.preprocessor.max_length == 1024


def tiny_classifier(num_classes=3, multi_label=False, **kwargs):
    backbone = tiny_backbone(**kwargs)
    return ASTClassifier(
        backbone, num_classes=num_classes,
        preprocessor=ASTAudioConverter(max_length=64),
        multi_label=multi_label,
        labels=[f"label_{i}" for i in range(num_classes)],
    )


def tone_dataset(count=16, seed=0):
    """Two classes a small model can tell apart: low and high tones."""
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16000
    labels = rng.integers(0, 2, count)
    freqs = np.where(labels == 0, 300.0, 3000.0) * rng.uniform(0.9, 1.1,
                                                               count)
    waves = np.sin(2 * np.pi * freqs[:, None] * t) * 0.5
    waves += rng.standard_normal(waves.shape) * 0.01
    return waves.astype(np.float32), labels


def test_fit_on_waveforms_single_label():
    keras.utils.set_random_seed(0)
    classifier = tiny_classifier(num_classes=2)
    classifier.compile(optimizer=keras.optimizers.Adam(3e-3))
    waves, labels = tone_dataset()
    history = classifier.fit(waves, labels, batch_size=8, epochs=15,
                             verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] * 0.7
    assert history.history["accuracy"][-1] >= 0.9


def test_fit_on_waveforms_multi_label():
    keras.utils.set_random_seed(0)
    classifier = tiny_classifier(num_classes=3, multi_label=True)
    classifier.compile(optimizer=keras.optimizers.Adam(3e-3))
    assert isinstance(classifier.loss, keras.losses.BinaryCrossentropy)
    waves, labels = tone_dataset()
    targets = np.stack([labels == 0, labels == 1, np.ones_like(labels)],
                       -1).astype("float32")
    history = classifier.fit(waves, targets, batch_size=8, epochs=15,
                             verbose=0)
    assert "map" in history.history
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.7
    scores = classifier.predict_scores(waves[:4])
    assert scores.min() >= 0 and scores.max() <= 1
    # Independent sigmoid scores, not a distribution over classes.
    assert not np.allclose(scores.sum(-1), 1.0)


def test_comes_compiled_with_the_defaults():
    classifier = tiny_classifier(num_classes=2)
    # No compile() call: a task is ready to fit (the KerasHub convention).
    assert isinstance(classifier.loss, SoftmaxCrossentropy)
    assert isinstance(classifier.optimizer, keras.optimizers.AdamW)
    assert classifier.optimizer.beta_1 == 0.95
    assert classifier.optimizer.global_clipnorm == 1.0
    waves, labels = tone_dataset(8)
    history = classifier.fit(waves, labels, batch_size=4, epochs=1,
                             verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert "accuracy" in history.history
    scores = classifier.predict_scores(noise(0.5))
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    # compile() with arguments still overrides.
    classifier.compile(optimizer="sgd", learning_rate=1e-3)
    assert isinstance(classifier.optimizer, keras.optimizers.SGD)
    classifier.compile(learning_rate=1e-3)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(1e-3)


@pytest.mark.parametrize("shape", ["ids", "column", "one_hot", "soft"])
def test_single_label_loss_takes_ids_and_soft_targets(shape):
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0],
                       [1.0, 1.5, -2.0]], np.float32)
    ids = np.array([0, 2, 0])
    one_hot = np.eye(3, dtype=np.float32)[ids]
    soft = 0.7 * one_hot + 0.3 * one_hot[::-1]
    targets = {"ids": ids, "column": ids[:, None].astype(np.float32),
               "one_hot": one_hot, "soft": soft}[shape]
    dense = soft if shape == "soft" else one_hot
    expected = keras.losses.CategoricalCrossentropy(from_logits=True)(
        dense, logits)
    got = SoftmaxCrossentropy()(targets, logits)
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-5)
    accuracy = SoftmaxAccuracy()
    accuracy.update_state(targets, logits)
    assert float(accuracy.result()) == pytest.approx(2 / 3)


def test_fit_with_lengths_dict():
    classifier = tiny_classifier(num_classes=2)
    waves, labels = tone_dataset(8)
    lengths = np.full(8, 8000, np.int32)
    lengths[::2] = 4000
    history = classifier.fit({"waveforms": waves, "lengths": lengths},
                             labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # The lengths reach the model: a clip cut to 4000 samples scores as
    # that clip alone, not as the padded batch row.
    batch = {"waveforms": waves[:2], "lengths": lengths[:2]}
    alone = classifier.predict([waves[0, :4000], waves[1]], verbose=0)
    np.testing.assert_allclose(classifier.predict(batch, verbose=0), alone,
                               atol=1e-5)
    assert not np.allclose(classifier.predict(waves[:2], verbose=0)[0],
                           alone[0], atol=1e-5)


def test_keras_contract(tmp_path):
    waves = np.stack([noise(0.5, seed=i) for i in range(2)])
    run_layer_test(
        lambda: tiny_classifier(multi_label=True), waves, tmp_path,
        preset=True,
        # The features and the head compute in float32.
        float32_layers=lambda c: [c.preprocessor, c.head_norm, c.head_dense],
        mixed_layers=lambda c: [c.backbone.embedding],
    )


@pytest.mark.large  # four layers through torch.compile: most of a minute
def test_token_keep_keras_contract(tmp_path):
    waves = np.stack([noise(0.5, seed=i) for i in range(2)])
    # Four layers: the pruning after the first leaves three to act on.
    run_layer_test(
        lambda: ASTClassifier(
            tiny_backbone(num_layers=4), 3, token_keep=0.5,
            preprocessor=ASTAudioConverter(max_length=64)),
        waves, tmp_path, atol=1e-6,
        float32_layers=lambda c: [c.head_norm, c.head_dense],
    )


def test_fits_under_mixed_precision():
    with dtype_policy("mixed_bfloat16"):
        classifier = tiny_classifier()
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3))
    waves, labels = tone_dataset(4)
    history = classifier.fit(waves, labels, batch_size=4, epochs=1,
                             verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert classifier.predict(waves, verbose=0).dtype == np.float32


def test_predict_errors():
    classifier = tiny_classifier()
    with pytest.raises(ValueError, match="22050 Hz.*expects 16000 Hz"):
        classifier.predict(noise(0.5), sampling_rate=22050)
    with pytest.raises(ValueError, match="mono"):
        classifier.predict(np.zeros((2, 800, 2), np.float32))
    bad = noise(0.5)
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        classifier.predict(bad[None])
    with pytest.raises(ValueError, match="NaN or infinite"):
        classifier.predict([noise(0.3), bad])


def test_constructor_errors():
    backbone = ASTBackbone(hidden_dim=32, num_layers=1, num_heads=4,
                           intermediate_dim=64, max_length=64)
    with pytest.raises(ValueError, match="max_length"):
        ASTClassifier(backbone, 2,
                      preprocessor=ASTAudioConverter(max_length=128))
    with pytest.raises(ValueError, match="3 labels for 2 classes"):
        ASTClassifier(backbone, 2, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="no preprocessor"):
        ASTClassifier(backbone, 2)({"waveforms": np.zeros((1, 400))})


def test_keras_file_round_trip(tmp_path):
    classifier = tiny_classifier(multi_label=True)
    waves = np.stack([noise(0.5, seed=i) for i in range(2)])
    # Trained, so the file holds the optimizer's state too.
    classifier.fit(waves, np.ones((2, classifier.num_classes), "float32"),
                   verbose=0)
    expected = classifier.predict(waves, verbose=0)
    path = str(tmp_path / "model.keras")
    classifier.save(path)
    with warnings.catch_warnings():
        # No "compile() was not called".
        warnings.simplefilter("error", UserWarning)
        restored = keras.saving.load_model(path)  # safe_mode is on
    assert isinstance(restored, ASTClassifier)
    assert isinstance(restored.optimizer, keras.optimizers.AdamW)
    assert restored.labels == classifier.labels
    assert restored.multi_label is True
    np.testing.assert_allclose(restored.predict(waves, verbose=0), expected,
                               atol=1e-6)


def test_from_preset_takes_an_augmenter(tmp_path):
    classifier = tiny_classifier()
    preset = str(tmp_path / "preset")
    classifier.save_to_preset(preset)
    augmenter = keras.layers.GaussianNoise(1.0, seed=0)
    built = ASTClassifier.from_preset(preset, augmenter=augmenter)
    assert built.augmenter is augmenter
    assert built.get_config()["augmenter"]["class_name"] == "GaussianNoise"
    # Training only: inference scores as the preset's model does.
    waves = np.stack([noise(0.5, seed=i) for i in range(2)])
    np.testing.assert_allclose(built.predict(waves, verbose=0),
                               classifier.predict(waves, verbose=0),
                               atol=1e-5)
    features = built.preprocessor(waves)
    assert not np.allclose(
        keras.ops.convert_to_numpy(built({"features": features},
                                         training=True)),
        keras.ops.convert_to_numpy(built({"features": features})),
        atol=1e-3)
    assert ASTClassifier.from_preset(preset).augmenter is None
