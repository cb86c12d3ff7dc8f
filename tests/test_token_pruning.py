"""Token pruning (`token_keep`): exact at 1.0, the documented tokens below."""

import keras
import numpy as np
import pytest
from conftest import noise
from conftest import tiny_backbone
from conftest import to_numpy

from keras_ast import ASTAudioConverter
from keras_ast import ASTClassifier
from keras_ast.models.backbone import pruning_layer

BACKEND = keras.config.backend()
# Four layers: pruning after the first, three layers on the kept tokens.
NUM_LAYERS = 4


def features_classifier(token_keep=1.0, seed=0):
    keras.utils.set_random_seed(seed)
    classifier = ASTClassifier(tiny_backbone(num_layers=NUM_LAYERS), 3,
                               token_keep=token_keep)
    # Logits of order one, so that a tolerance means something.
    kernel = classifier.head_dense.kernel
    kernel.assign(np.random.default_rng(seed).normal(
        0, 0.5, kernel.shape).astype("float32"))
    return classifier


def audio_classifier(token_keep=1.0):
    keras.utils.set_random_seed(1)
    return ASTClassifier(tiny_backbone(num_layers=NUM_LAYERS), 3,
                         preprocessor=ASTAudioConverter(max_length=64),
                         labels=["a", "b", "c"], token_keep=token_keep)


def random_features(batch=3, seed=0):
    return np.random.default_rng(seed).standard_normal(
        (batch, 64, 128)).astype("float32")


def copy_of(classifier, token_keep):
    other = features_classifier(token_keep=token_keep, seed=99)
    other.set_weights(classifier.get_weights())
    return other


def manual_logits(classifier, features, token_keep):
    """Pruning written out from `hidden_states` and the attention maps."""
    backbone = classifier.backbone
    after = pruning_layer(backbone.num_layers)
    out = backbone.hidden_states(features)
    maps = to_numpy(out["attentions"][after - 1])  # (batch, heads, q, k)
    cls_attention = maps[:, :, :2].mean(axis=(1, 2))[:, 2:]
    frequency, time = backbone.token_grid
    count = max(1, round(token_keep * frequency * time))
    top = np.argsort(-cls_attention, axis=-1, kind="stable")[:, :count]
    tokens = to_numpy(out["hidden_states"][after])
    kept = np.take_along_axis(tokens, top[:, :, None] + 2, axis=1)
    x = np.concatenate([tokens[:, :2], kept], axis=1)
    for index in range(after, backbone.num_layers):
        last = index == backbone.num_layers - 1
        x = backbone.encoder_layers[index](
            x, num_queries=2 if last else None)
    x = backbone.final_norm(x)
    pooled = (x[:, 0] + x[:, 1]) / 2.0
    return to_numpy(classifier.head_dense(classifier.head_norm(pooled)))


def test_pruning_layer():
    assert [pruning_layer(n) for n in (1, 2, 4, 8, 12, 24)] == [
        1, 1, 1, 2, 3, 6]


def test_one_is_the_unpruned_computation_bit_for_bit():
    classifier = features_classifier()
    features = random_features()
    expected = classifier.predict(features, verbose=0)
    same = copy_of(classifier, 1.0)
    np.testing.assert_array_equal(same.predict(features, verbose=0),
                                  expected)
    # Back to 1.0 after pruning: the unpruned logits again.
    same.token_keep = 0.5
    assert not np.allclose(same.predict(features, verbose=0), expected,
                           atol=1e-4)
    same.token_keep = 1.0
    np.testing.assert_array_equal(same.predict(features, verbose=0),
                                  expected)
    np.testing.assert_array_equal(to_numpy(same(features)),
                                  to_numpy(classifier(features)))


@pytest.mark.parametrize("token_keep", [0.5, 0.2, 0.01])
def test_pruned_logits_match_the_written_out_computation(token_keep):
    classifier = features_classifier(token_keep=token_keep)
    features = random_features()
    expected = manual_logits(classifier, features, token_keep)
    np.testing.assert_allclose(classifier.predict(features, verbose=0),
                               expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(to_numpy(classifier(features)), expected,
                               atol=1e-4, rtol=0)
    # The kept tokens are fewer: other logits than the whole sequence.
    full = copy_of(classifier, 1.0).predict(features, verbose=0)
    assert not np.allclose(full, expected, atol=1e-4)


@pytest.mark.large
def test_training_runs_every_token():
    classifier = features_classifier(token_keep=0.3)
    features = random_features()
    full = copy_of(classifier, 1.0)
    np.testing.assert_allclose(
        to_numpy(classifier(features, training=True)),
        to_numpy(full(features, training=True)), atol=1e-6, rtol=0)
    history = classifier.fit(features, np.array([0, 1, 2]), verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_setter_makes_predict_retrace():
    classifier = features_classifier()
    features = random_features()
    full = classifier.predict(features, verbose=0)
    classifier.token_keep = 0.5
    assert classifier.token_keep == 0.5
    pruned = classifier.predict(features, verbose=0)
    assert not np.allclose(pruned, full, atol=1e-4)
    np.testing.assert_allclose(
        pruned, copy_of(classifier, 0.5).predict(features, verbose=0),
        atol=1e-5, rtol=0)
    # predict_on_batch (classify's path) takes it too.
    np.testing.assert_allclose(to_numpy(classifier.predict_on_batch(
        features)), pruned, atol=1e-5, rtol=0)


@pytest.mark.parametrize("value", [0, 0.0, -0.5, 1.5, True, "0.5", None])
def test_bad_values_raise(value):
    classifier = features_classifier()
    with pytest.raises(ValueError, match=r"token_keep must be .* \(0, 1\]"):
        classifier.token_keep = value
    assert classifier.token_keep == 1.0
    with pytest.raises(ValueError, match="token_keep"):
        ASTClassifier(classifier.backbone, 3, token_keep=value)


def test_classify_and_tag_take_a_share_for_the_call():
    classifier = audio_classifier()
    clips = [noise(0.6, seed=i) for i in range(3)]
    pruned = audio_classifier(token_keep=0.5)
    pruned.set_weights(classifier.get_weights())

    got = classifier.classify(clips, top_k=3, token_keep=0.5,
                              sampling_rate=16000)
    assert classifier.token_keep == 1.0  # restored
    want = pruned.classify(clips, top_k=3, sampling_rate=16000)
    for ours, theirs in zip(got, want):
        assert [label for label, _ in ours] == [name for name, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours],
                                   [s for _, s in theirs], atol=1e-5)
    full = classifier.classify(clips, top_k=3, sampling_rate=16000)
    assert not np.allclose([[s for _, s in r] for r in full],
                           [[s for _, s in r] for r in got], atol=1e-5)

    timeline = classifier.tag(clips[0], token_keep=0.5, threshold=0.0,
                           sampling_rate=16000)
    assert classifier.token_keep == 1.0
    np.testing.assert_allclose(
        timeline.scores, pruned.tag(clips[0], threshold=0.0,
                                   sampling_rate=16000).scores,
        atol=1e-5)
    # A refused share leaves the classifier's own.
    with pytest.raises(ValueError, match="token_keep"):
        classifier.classify(clips, token_keep=2.0, sampling_rate=16000)
    assert classifier.token_keep == 1.0


def test_config_and_preset_round_trip(tmp_path):
    classifier = audio_classifier(token_keep=0.5)
    config = classifier.get_config()
    assert config["token_keep"] == 0.5
    assert ASTClassifier.from_config(config).token_keep == 0.5
    preset = str(tmp_path / "preset")
    classifier.save_to_preset(preset)
    assert ASTClassifier.from_preset(preset).token_keep == 1.0
    loaded = ASTClassifier.from_preset(preset, token_keep=0.5)
    assert loaded.token_keep == 0.5
    waves = np.stack([noise(0.6, seed=i) for i in range(2)])
    np.testing.assert_allclose(loaded.predict(waves, verbose=0),
                               classifier.predict(waves, verbose=0),
                               atol=1e-5)


def run_onnx(path, waves):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"waveforms": waves})[0]


def run_litert(path, waves):
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_path=str(path)).get_signature_runner(
        "serving_default")
    return run(waveforms=waves)["logits"]


@pytest.mark.large
@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx", "litert"])
def test_exports_take_token_keep(tmp_path, fmt):
    # The SavedModel from TensorFlow and JAX (through a StableHLO module
    # that TensorFlow reads); ONNX and LiteRT from TensorFlow.
    if BACKEND != "tensorflow" and not (
            fmt == "tf_saved_model" and BACKEND == "jax"):
        pytest.skip(f"{fmt} export is tested on TensorFlow")
    classifier = audio_classifier(token_keep=0.5)
    waves = np.stack([noise(0.6, seed=i) for i in range(2)])
    expected = classifier.predict(waves, verbose=0)
    if fmt == "tf_saved_model":
        import tensorflow as tf

        path = classifier.export(str(tmp_path / "saved_model"))
        loaded = tf.saved_model.load(path)  # keep it: it owns the variables
        got = loaded.signatures["serve"](
            waveforms=tf.constant(waves))["logits"].numpy()
    else:
        if fmt == "onnx":
            pytest.importorskip("onnxruntime")
        else:
            pytest.importorskip("ai_edge_litert")
        path = tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'tflite'}"
        classifier.export(str(path), format=fmt)
        got = (run_onnx if fmt == "onnx" else run_litert)(path, waves)
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
    full = copy_of_audio(classifier).predict(waves, verbose=0)
    assert not np.allclose(got, full, atol=1e-3)


def copy_of_audio(classifier):
    other = audio_classifier()
    other.set_weights(classifier.get_weights())
    return other
