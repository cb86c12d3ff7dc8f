"""Weight quantization: Keras' `quantize` on every Dense layer of a model,
kept by presets and by the SavedModel export."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
from conftest import noise
from conftest import tiny_backbone
from conftest import to_numpy

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.ops.dense import Dense
from keras_ast.presets.io import dense_layers

NUM_LAYERS = 2
# Dense layers of one encoder layer: query, key, value, attention output,
# intermediate, output.
DENSE_PER_LAYER = 6


def classifier(num_classes=5):
    backbone = tiny_backbone(num_layers=NUM_LAYERS)
    return ASTClassifier(
        backbone, num_classes=num_classes,
        preprocessor=ASTAudioConverter(max_length=backbone.max_length),
        labels=[f"class {i}" for i in range(num_classes)])


def waveforms():
    return np.stack([noise(0.5, seed=1), noise(0.5, seed=2, scale=0.3),
                     noise(0.5, seed=3, scale=0.05)])


def logits(model, x):
    """`model`'s logits, called eagerly (no compiled `predict` to build)."""
    return to_numpy(model(x, training=False))


def modes(model, skip=()):
    return [layer.quantization_mode for layer in dense_layers(model, skip)]


def shown(caught):
    """The messages of the warnings Python shows a user by default: not
    a `DeprecationWarning` raised inside a library (on JAX, Keras' own
    quantizer passes a variable to `np.array`, which NumPy 2 reports)."""
    return [str(w.message) for w in caught
            if not issubclass(w.category, DeprecationWarning)]


def quantized(model, mode="int8"):
    """`model.quantize(mode)`, with the warnings it raised (`shown`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize(mode)
    return shown(caught)


def test_dense_takes_keras_int8_path():
    keras.utils.set_random_seed(0)
    layer = Dense(8)
    x = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")
    expected = to_numpy(layer(x))
    layer.quantize("int8")
    assert layer.quantization_mode == "int8"
    assert keras.backend.standardize_dtype(layer.kernel.dtype) == "int8"
    got = to_numpy(layer(x))
    assert not np.array_equal(got, expected)  # the int8 product ran
    np.testing.assert_allclose(got, expected, atol=0.05)


def test_classifier_int8_quantizes_every_dense():
    keras.utils.set_random_seed(0)
    model = classifier()
    x = waveforms()
    expected = logits(model, x)
    assert quantized(model) == []
    found = modes(model)
    # Every encoder projection and the head.
    assert len(found) == NUM_LAYERS * DENSE_PER_LAYER + 1
    assert set(found) == {"int8"}
    got = logits(model, x)
    assert not np.array_equal(got, expected)
    difference = np.abs(to_numpy(model.scores(got))
                        - to_numpy(model.scores(expected))).max()
    assert difference < 0.05


@pytest.mark.large
def test_quantized_classifier_fits_and_predicts():
    keras.utils.set_random_seed(0)
    model = classifier()
    x = waveforms()
    quantized(model)
    expected = logits(model, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected,
                               atol=1e-5)
    # Trains what stays float (biases, norms, embeddings).
    history = model.fit(x, np.array([0, 1, 2]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert set(modes(model)) == {"int8"}
    assert np.isfinite(model.predict(x, verbose=0)).all()


@pytest.mark.parametrize(
    "mode", ["int8", pytest.param("int4", marks=pytest.mark.large)])
def test_quantized_classifier_preset_round_trip(tmp_path, mode):
    keras.utils.set_random_seed(1)
    model = classifier()
    quantized(model, mode)
    expected = logits(model, waveforms())
    target = str(tmp_path / "preset")
    model.save_to_preset(target)
    config = json.load(open(os.path.join(target, "config.json")))
    assert config["format_version"] == 3
    assert {part: way["mode"] for part, way in
            config["quantization"].items()} == {"backbone": mode,
                                                "head": mode}
    restored = ASTClassifier.from_preset(target)
    assert set(modes(restored)) == {mode}
    assert restored.labels == model.labels
    np.testing.assert_allclose(logits(restored, waveforms()), expected,
                               atol=1e-6)


@pytest.mark.large
def test_new_head_on_a_quantized_preset_is_float(tmp_path):
    keras.utils.set_random_seed(2)
    model = classifier()
    quantized(model)
    target = str(tmp_path / "preset")
    model.save_to_preset(target)
    tuned = ASTClassifier.from_preset(target, num_classes=3)
    assert set(modes(tuned, skip=[tuned.backbone])) == {None}
    assert set(modes(tuned.backbone)) == {"int8"}
    tuned.fit(waveforms(), np.array([0, 1, 2]), epochs=1, verbose=0)
    expected = logits(tuned, waveforms())
    again = str(tmp_path / "tuned")
    tuned.save_to_preset(again)
    config = json.load(open(os.path.join(again, "config.json")))
    assert sorted(config["quantization"]) == ["backbone"]
    restored = ASTClassifier.from_preset(again)
    assert set(modes(restored.backbone)) == {"int8"}
    assert set(modes(restored, skip=[restored.backbone])) == {None}
    np.testing.assert_allclose(logits(restored, waveforms()), expected,
                               atol=1e-6)


@pytest.mark.large
def test_quantized_backbone_preset_round_trip(tmp_path):
    keras.utils.set_random_seed(3)
    backbone = tiny_backbone(num_layers=NUM_LAYERS)
    features = np.random.default_rng(0).normal(
        size=(2, backbone.max_length, backbone.num_mel_bins)
    ).astype("float32")
    assert quantized(backbone) == []
    expected = to_numpy(backbone(features)["pooled_output"])
    target = str(tmp_path / "backbone")
    backbone.save_to_preset(target)
    restored = ASTBackbone.from_preset(target)
    assert set(modes(restored)) == {"int8"}
    np.testing.assert_allclose(
        to_numpy(restored(features)["pooled_output"]), expected, atol=1e-6)
    # Another input length: the weights move over to a quantized backbone.
    longer = ASTBackbone.from_preset(target,
                                     max_length=2 * backbone.max_length)
    assert set(modes(longer)) == {"int8"}
    np.testing.assert_array_equal(
        to_numpy(longer.encoder_layers[0].query.kernel),
        to_numpy(restored.encoder_layers[0].query.kernel))
    # A classifier over the backbone preset: an int8 backbone, a new
    # float head.
    model = ASTClassifier.from_preset(target, num_classes=2,
                                      preprocessor=False)
    assert set(modes(model.backbone)) == {"int8"}
    assert model.head_dense.quantization_mode is None


def test_partly_quantized_model_is_refused_by_presets(tmp_path):
    model = classifier()
    model.quantize("int8", filters="query")
    with pytest.raises(ValueError, match="quantized alike"):
        model.save_to_preset(str(tmp_path / "preset"))
    assert not os.path.exists(tmp_path / "preset")


def test_quantize_offers_keras_only_dense_layers():
    model = classifier()
    # Keras' own offer: every layer, and a warning for each one that is
    # not quantizable (norms, dropout, the converter...).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras.Model.quantize(model, "int8", filters=lambda layer: not
                             isinstance(layer, keras.layers.Dense))
    assert any("LayerNormalization" in message
               for message in shown(caught))
    assert set(modes(model)) == {None}
    assert quantized(model) == []
    assert set(modes(model)) == {"int8"}
    backbone = tiny_backbone(num_layers=NUM_LAYERS)
    assert quantized(backbone) == []
    assert modes(backbone) == ["int8"] * (NUM_LAYERS * DENSE_PER_LAYER)


def test_quantize_keeps_callers_filters():
    model = classifier()
    model.quantize("int8", filters="query")
    found = {layer.name: layer.quantization_mode
             for layer in dense_layers(model)}
    assert found.pop("query") == "int8"
    assert set(found.values()) == {None}


def test_float_configs_hold_no_quantization():
    model = classifier()
    assert "quantization" not in model.get_config()
    assert "quantization" not in model.backbone.get_config()
    # A new float head on a quantized backbone: the backbone's alone.
    model.backbone.quantize("int8")
    assert "quantization" not in model.get_config()
    assert model.backbone.get_config()["quantization"]["mode"] == "int8"


def test_keras_file_of_quantized_model_round_trips(tmp_path):
    keras.utils.set_random_seed(5)
    model = classifier()
    quantized(model)
    x = waveforms()
    expected = logits(model, x)
    assert model.get_config()["quantization"]["mode"] == "int8"
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is ASTClassifier
    assert modes(restored) == modes(model)
    assert set(modes(restored)) == {"int8"}
    assert restored.labels == model.labels
    np.testing.assert_allclose(logits(restored, x), expected, atol=1e-6)


def test_keras_file_of_partly_quantized_model_is_refused(tmp_path):
    model = classifier()
    model.quantize("int8", filters="query")
    with pytest.raises(ValueError, match="quantized alike"):
        model.save(str(tmp_path / "model.keras"))


def test_quantized_weights_refused_by_float_model(tmp_path):
    model = classifier()
    quantized(model)
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    with pytest.raises(ValueError, match="Quantize the model"):
        classifier().load_weights(path)


@pytest.mark.large
@pytest.mark.skipif(keras.config.backend() not in ("tensorflow", "jax"),
                    reason="the SavedModel export runs on TensorFlow, JAX")
def test_quantized_saved_model_is_smaller_and_serves(tmp_path):
    import tensorflow as tf

    keras.utils.set_random_seed(4)
    model = classifier()
    x = waveforms()

    def variables_size(path):
        folder = os.path.join(path, "variables")
        return sum(os.path.getsize(os.path.join(folder, name))
                   for name in os.listdir(folder))

    float_path = model.export(str(tmp_path / "float"))
    quantized(model)
    int8_path = model.export(str(tmp_path / "int8"))
    assert variables_size(int8_path) < variables_size(float_path)
    served = tf.saved_model.load(int8_path).signatures["serve"](
        waveforms=tf.constant(x))["logits"].numpy()
    np.testing.assert_allclose(served, model.predict(x, verbose=0),
                               atol=1e-4)
