"""SavedModel export: raw waveforms in, logits out, loadable by TF alone."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import soundfile
from conftest import clip_of

import keras_ast
from keras_ast import ASTClassifier
from keras_ast import pad_waveforms

# Reloads each SavedModel in TensorFlow, in a fresh interpreter.
pytestmark = pytest.mark.large

EXPORTS = keras.config.backend() in ("tensorflow", "jax")

# Runs in a fresh interpreter that imports TensorFlow and nothing of
# keras_ast or Keras: what TF Serving would see.
SERVE = textwrap.dedent(
    """
    import json, sys, threading, time
    import numpy as np
    import tensorflow as tf

    path, inputs = sys.argv[1], np.load(sys.argv[2])
    model = tf.saved_model.load(path)
    sig = model.signatures
    out = {"signatures": sorted(sig)}
    waves, lengths = inputs["waves"], inputs["lengths"]
    out["outputs"] = {name: sorted(sig[name].structured_outputs)
                      for name in sig}
    out["serve"] = sig["serve"](waveforms=tf.constant(waves))[
        "logits"].numpy().tolist()
    out["default"] = sig["serving_default"](waveforms=tf.constant(waves))[
        "logits"].numpy().tolist()
    out["scores"] = sig["scores"](waveforms=tf.constant(waves))[
        "scores"].numpy().tolist()
    out["with_lengths"] = sig["serve_with_lengths"](
        waveforms=tf.constant(waves), lengths=tf.constant(lengths))[
        "logits"].numpy().tolist()
    out["short"] = sig["serve"](waveforms=tf.constant(waves[:1, :4000]))[
        "logits"].numpy().tolist()
    top = sig["classify"](waveforms=tf.constant(waves))
    out["classify"] = [[label.decode() for label in row]
                       for row in top["labels"].numpy()]
    out["classify_scores"] = top["scores"].numpy().tolist()
    wavs = [open(name, "rb").read() for name in sys.argv[3:5]]
    wav = sig["serve_wav"](wav=tf.constant(wavs))
    out["wav_logits"] = wav["logits"].numpy().tolist()
    out["wav_labels"] = [[label.decode() for label in row]
                         for row in wav["labels"].numpy()]
    errors = {}
    bad = {"nan": ("serve", {"waveforms": np.full((1, 800), np.nan,
                                                  np.float32)}),
           "one_dimensional": ("serve",
                               {"waveforms": np.zeros(800, np.float32)}),
           "empty": ("serve", {"waveforms": np.zeros((1, 0), np.float32)}),
           "rate": ("serve_wav",
                    {"wav": np.array([open(sys.argv[5], "rb").read()])})}
    for name, (signature, kwargs) in bad.items():
        try:
            sig[signature](**{k: tf.constant(v) for k, v in kwargs.items()})
            errors[name] = None
        except tf.errors.InvalidArgumentError as error:
            errors[name] = error.message
    out["errors"] = errors

    # 8 threads, 200 requests of mixed lengths on the one loaded model.
    # Four lengths: each new shape costs a compilation under jax2tf.
    sizes = [4000, 9000, 12000, waves.shape[1]]
    requests = [waves[:1 + i % 2, :sizes[(i // 2) % 4]] for i in range(200)]
    expected = [sig["serve"](waveforms=tf.constant(r))["logits"].numpy()
                for r in requests]
    results, failures = [None] * 200, []

    def worker(indices):
        for i in indices:
            try:
                results[i] = sig["serve"](waveforms=tf.constant(
                    requests[i]))["logits"].numpy()
            except Exception as error:
                failures.append(repr(error))

    start = time.time()
    threads = [threading.Thread(target=worker, args=(range(k, 200, 8),))
               for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    out["threads"] = {
        "failures": failures, "seconds": time.time() - start,
        "alive": sum(thread.is_alive() for thread in threads),
        "max_difference": max(float(np.abs(a - b).max())
                              for a, b in zip(results, expected)
                              if a is not None),
        "answered": sum(r is not None for r in results)}
    print(json.dumps(out))
    """
)


def write_wav(path, clip, rate=16000, channels=1):
    soundfile.write(path, np.stack([clip] * channels, -1), rate,
                    subtype="PCM_16")
    return path


@pytest.mark.skipif(not EXPORTS, reason="export needs the TF or JAX backend")
def test_saved_model_serves_waveforms(tmp_path, reference, speech):
    directory, model, extractor = reference("speech_commands")
    classifier = ASTClassifier.from_preset(directory)
    clips = [clip_of(speech[0], 1.0), clip_of(speech[1], 0.6)]
    waves, lengths = pad_waveforms(clips)
    path = classifier.export(str(tmp_path / "serving"), serving_version=3,
                             top_k=2)
    assert path == str(tmp_path / "serving" / "3")  # TF Serving's layout
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    labels_asset = open(os.path.join(path, "assets", "labels.txt")).read()
    assert labels_asset.split("\n")[:35] == classifier.labels
    np.savez(tmp_path / "inputs.npz", waves=waves, lengths=lengths)
    wav_files = [
        write_wav(str(tmp_path / "stereo.wav"), clips[0], channels=2),
        write_wav(str(tmp_path / "mono.wav"), clips[1]),
        write_wav(str(tmp_path / "8k.wav"), clips[1][::2], rate=8000),
    ]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", SERVE, path, str(tmp_path / "inputs.npz")]
        + wav_files,
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["signatures"] == [
        "classify", "scores", "serve", "serve_wav", "serve_with_lengths",
        "serving_default"]
    # Named outputs, not output_0.
    assert served["outputs"]["serve"] == ["logits"]
    assert served["outputs"]["scores"] == ["scores"]
    assert served["outputs"]["classify"] == ["labels", "scores"]
    assert served["outputs"]["serve_wav"] == ["labels", "logits", "scores"]
    atol = 1e-4
    logits = classifier.predict(waves, verbose=0)
    np.testing.assert_allclose(served["serve"], logits, atol=atol)
    np.testing.assert_allclose(served["default"], logits, atol=atol)
    np.testing.assert_allclose(served["with_lengths"],
                               classifier.predict(clips, verbose=0),
                               atol=atol)
    scores = keras.ops.convert_to_numpy(classifier.scores(logits))
    np.testing.assert_allclose(served["scores"], scores, atol=atol)
    np.testing.assert_allclose(served["short"],
                               classifier.predict(waves[:1, :4000],
                                                  verbose=0),
                               atol=atol)
    # classify: the label strings of the two best scores.
    for row, names, values in zip(scores, served["classify"],
                                  served["classify_scores"]):
        best = np.argsort(-row)[:2]
        assert names == [classifier.labels[i] for i in best]
        np.testing.assert_allclose(values, row[best], atol=atol)
    # serve_wav: 16-bit WAV bytes (stereo mixed down) as the decoded clips.
    decoded = [keras_ast.load_audio(name) for name in (wav_files[:2])]
    np.testing.assert_allclose(served["wav_logits"],
                               classifier.predict(decoded, verbose=0),
                               atol=1e-3)
    errors = served["errors"]
    assert "NaN or infinite" in errors["nan"]
    assert "(batch, samples)" in errors["one_dimensional"]
    assert "got shape" in errors["empty"]
    assert "8000" in errors["rate"] and "16000" in errors["rate"]
    threads = served["threads"]
    assert threads["failures"] == [] and threads["alive"] == 0
    assert threads["answered"] == 200
    assert threads["max_difference"] < 1e-5


@pytest.mark.skipif(not EXPORTS, reason="export needs the TF or JAX backend")
def test_saved_model_cli_show_and_run(tmp_path, reference):
    """TF Serving's loader, through the saved_model_cli TensorFlow ships."""
    classifier = ASTClassifier.from_preset(reference("speech_commands")[0])
    path = classifier.export(str(tmp_path / "model"))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", path],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "signature_def['classify']" in shown.stdout
    assert "outputs['labels']" in shown.stdout
    clip = np.random.default_rng(0).standard_normal((1, 8000)) * 0.1
    np.save(tmp_path / "clip.npy", clip.astype(np.float32))
    run = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
         "serve", "--inputs", f"waveforms={tmp_path / 'clip.npy'}",
         "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = np.load(tmp_path / "out" / "logits.npy")
    np.testing.assert_allclose(got, classifier.predict(clip, verbose=0),
                               atol=1e-4)


@pytest.mark.skipif(EXPORTS, reason="only the torch backend refuses")
def test_export_on_torch_says_what_to_do(tmp_path, reference):
    classifier = ASTClassifier.from_preset(reference("speech_commands")[0])
    with pytest.raises(NotImplementedError, match="KERAS_BACKEND"):
        classifier.export(str(tmp_path / "saved_model"))


@pytest.mark.skipif(not EXPORTS, reason="export needs the TF or JAX backend")
def test_features_model_exports(tmp_path, reference):
    import tensorflow as tf

    classifier = ASTClassifier.from_preset(reference("speech_commands")[0],
                                           preprocessor=False)
    path = str(tmp_path / "features_model")
    classifier.export(path)
    features = np.random.default_rng(0).standard_normal(
        (2, 128, 128)).astype("float32")
    loaded = tf.saved_model.load(path)  # keep it: it owns the variables
    served = loaded.serve(tf.constant(features)).numpy()
    np.testing.assert_allclose(served, classifier.predict(features,
                                                          verbose=0),
                               atol=1e-4)
