"""SavedModel export: raw waveforms in, logits out, loadable by TF alone."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import clip_of

from keras_ast import ASTClassifier
from keras_ast import pad_waveforms

EXPORTS = keras.config.backend() in ("tensorflow", "jax")

# Runs in a fresh interpreter that imports TensorFlow and nothing of
# keras_ast or Keras: what TF Serving would see.
SERVE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    path, inputs = sys.argv[1], np.load(sys.argv[2])
    model = tf.saved_model.load(path)
    out = {"signatures": sorted(model.signatures)}
    waves, lengths = inputs["waves"], inputs["lengths"]
    out["serve"] = model.serve(tf.constant(waves)).numpy().tolist()
    out["scores"] = model.scores(tf.constant(waves)).numpy().tolist()
    out["with_lengths"] = model.serve_with_lengths(
        tf.constant(waves), tf.constant(lengths)).numpy().tolist()
    short = model.serve(tf.constant(waves[:1, :4000])).numpy()
    out["short"] = short.tolist()
    sig = model.signatures["serving_default"]
    out["signature_outputs"] = sorted(
        sig(**{next(iter(sig.structured_input_signature[1])):
               tf.constant(waves)}))
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not EXPORTS, reason="export needs the TF or JAX backend")
def test_saved_model_serves_waveforms(tmp_path, reference, speech):
    directory, model, extractor = reference("speech_commands")
    classifier = ASTClassifier.from_preset(directory)
    clips = [clip_of(speech[0], 1.0), clip_of(speech[1], 0.6)]
    waves, lengths = pad_waveforms(clips)
    path = str(tmp_path / "saved_model")
    classifier.export(path)
    np.savez(tmp_path / "inputs.npz", waves=waves, lengths=lengths)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", SERVE, path, str(tmp_path / "inputs.npz")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"serve", "scores", "serve_with_lengths"} <= set(
        served["signatures"]
    )
    atol = 1e-4
    np.testing.assert_allclose(served["serve"],
                               classifier.predict(waves, verbose=0),
                               atol=atol)
    np.testing.assert_allclose(served["with_lengths"],
                               classifier.predict(clips, verbose=0),
                               atol=atol)
    np.testing.assert_allclose(
        served["scores"],
        keras.ops.convert_to_numpy(
            classifier.scores(classifier.predict(waves, verbose=0))),
        atol=atol,
    )
    np.testing.assert_allclose(served["short"],
                               classifier.predict(waves[:1, :4000],
                                                  verbose=0),
                               atol=atol)
    # TF Serving's default signature answers with named logits.
    assert served["signature_outputs"] == ["output_0"]


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
