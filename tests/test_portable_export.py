"""ONNX and LiteRT exports: waveforms in, run by their own runtimes alone."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import clip_of
from conftest import noise
from conftest import to_numpy

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.export import portable as portable_export

# Clips longer than the tiny model's window are cut, on purpose.
pytestmark = [
    pytest.mark.large,  # runs the files in ONNX Runtime and LiteRT
    pytest.mark.filterwarnings("ignore:A clip of .* is longer"),
]

BACKEND = keras.config.backend()
LABELS = ["yes", "no", "up"]
ATOL = 1e-3

# Runs in a fresh interpreter with onnxruntime or ai-edge-litert and
# nothing of Keras or keras_ast: what a deployment would have.
RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    fmt, path, inputs, outputs = sys.argv[1:5]
    batches = np.load(inputs)
    results, info = {}, {}
    if fmt == "onnx":
        import onnxruntime
        import onnx

        session = onnxruntime.InferenceSession(
            path, providers=["CPUExecutionProvider"])
        info["inputs"] = [[i.name, i.shape] for i in session.get_inputs()]
        info["outputs"] = [o.name for o in session.get_outputs()]
        info["ops"] = sorted({n.op_type for n in onnx.load(path).graph.node})
        for key in batches.files:
            logits, scores = session.run(["logits", "scores"],
                                         {"waveforms": batches[key]})
            results[key + "/logits"], results[key + "/scores"] = logits, scores
    else:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        signature = interpreter.get_signature_list()["serving_default"]
        info["inputs"] = [[name, interpreter.get_input_details()[0][
            "shape_signature"].tolist()] for name in signature["inputs"]]
        info["outputs"] = sorted(signature["outputs"])
        run = interpreter.get_signature_runner("serving_default")
        for key in batches.files:
            out = run(waveforms=batches[key])
            results[key + "/logits"] = out["logits"]
            results[key + "/scores"] = out["scores"]
    info["foreign_modules"] = sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("keras", "keras_ast", "tensorflow", "torch",
                               "jax"))
    np.savez(outputs, **results)
    print(json.dumps(info))
    """
)


def run_artifact(tmp_path, fmt, path, batches):
    """Runs `path` on each batch in a subprocess; returns info, outputs."""
    inputs = tmp_path / "inputs.npz"
    outputs = tmp_path / "outputs.npz"
    np.savez(inputs, **{f"b{i}": b for i, b in enumerate(batches)})
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", RUN, fmt, str(path), str(inputs),
         str(outputs)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    # Neither Keras nor keras_ast (nor a framework) was needed.
    assert info["foreign_modules"] == []
    got = np.load(outputs)
    return info, [(got[f"b{i}/logits"], got[f"b{i}/scores"])
                  for i in range(len(batches))]


def tiny_classifier(max_length, multi_label=False, hidden_dim=32):
    keras.utils.set_random_seed(max_length)
    backbone = ASTBackbone(hidden_dim=hidden_dim, num_layers=2, num_heads=4,
                           intermediate_dim=2 * hidden_dim,
                           max_length=max_length)
    classifier = ASTClassifier(
        backbone, num_classes=3, multi_label=multi_label, labels=LABELS,
        preprocessor=ASTAudioConverter(max_length=max_length),
    )
    # Logits of order one, so that the tolerance means something.
    kernel = classifier.head_dense.kernel
    kernel.assign(np.random.default_rng(0).normal(
        0, 0.5, kernel.shape).astype("float32"))
    return classifier


def expected(classifier, batch):
    logits = classifier.predict(batch, verbose=0)
    return logits, to_numpy(classifier.scores(logits))


def batch_of(speech, seconds, offset=0):
    return np.stack([clip_of(speech[(i + offset) % len(speech)], s)
                     for i, s in enumerate(seconds)])


def assert_outputs_match(classifier, batches, outputs):
    for batch, (logits, scores) in zip(batches, outputs):
        want_logits, want_scores = expected(classifier, batch)
        assert logits.shape == (len(batch), 3)
        np.testing.assert_allclose(logits, want_logits, atol=ATOL, rtol=0)
        np.testing.assert_allclose(scores, want_scores, atol=ATOL, rtol=0)


# (clips, seconds) per batch: 1 s of audio fills the 100-frame model,
# 1000 frames take 10 s clips.
SECONDS = {100: [(2, 1.0), (1, 0.6), (3, 3.7)],
           1000: [(2, 1.0), (1, 4.2), (3, 10.0)]}


@pytest.mark.parametrize("max_length", [100, 1000])
def test_onnx_runs_in_onnxruntime(tmp_path, speech, max_length):
    if BACKEND == "jax":
        pytest.skip("no ONNX export from JAX (see the error test)")
    classifier = tiny_classifier(max_length, multi_label=max_length == 1000)
    path = tmp_path / "model.onnx"
    if BACKEND == "tensorflow":
        # Dynamic batch and length: one file for every batch below.
        classifier.export(str(path), format="onnx")
        batches = [batch_of(speech, [s] * n, i)
                   for i, (n, s) in enumerate(SECONDS[max_length])]
        shape = ["batch", "samples"]
    else:
        # torch exports fixed shapes; a batch of one too (torch.onnx
        # once lost its size inside the converter and failed).
        num_samples = classifier.preprocessor.num_samples
        size = 1 if max_length == 100 else 2
        portable_export.export_onnx(classifier, path, batch_size=size,
                                    num_samples=num_samples)
        seconds = num_samples / 16000 + 1
        long = batch_of(speech, [seconds] * size)[:, :num_samples]
        short = batch_of(speech, [0.5] * size, 1)  # zero-padded, as Keras
        short = np.pad(short, [(0, 0), (0, num_samples - short.shape[1])])
        batches = [long, short]
        shape = [size, num_samples]
    # The export computed the spectrum as a matrix product, on a copy of
    # the converter.
    assert classifier.preprocessor.spectrum_method == "fft"
    info, outputs = run_artifact(tmp_path, "onnx", path, batches)
    assert info["inputs"] == [["waveforms", shape]]
    assert info["outputs"] == ["logits", "scores"]
    assert not {"DFT", "RFFT", "STFT"} & set(info["ops"])
    assert_outputs_match(classifier, batches, outputs)


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="LiteRT export needs the TensorFlow backend "
                           "(the error test covers the others)")
@pytest.mark.parametrize("max_length", [100, 1000])
def test_litert_runs_in_ai_edge_litert(tmp_path, speech, max_length):
    classifier = tiny_classifier(max_length)
    path = tmp_path / "model.tflite"
    classifier.export(str(path), format="litert")
    batches = [batch_of(speech, [s] * n, i)
               for i, (n, s) in enumerate(SECONDS[max_length])]
    info, outputs = run_artifact(tmp_path, "litert", path, batches)
    assert info["inputs"] == [["waveforms", [-1, -1]]]
    assert info["outputs"] == ["logits", "scores"]
    assert_outputs_match(classifier, batches, outputs)


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_bad_clips_get_nan_scores(tmp_path, speech, fmt):
    # Neither runtime can raise: a clip with no samples or a non-finite
    # sample gets NaN logits and scores, never a confident answer, and
    # the good clips of its batch keep theirs.
    if fmt == "onnx" and BACKEND == "jax":
        pytest.skip("no ONNX export from JAX")
    if fmt == "litert" and BACKEND != "tensorflow":
        pytest.skip("LiteRT export needs the TensorFlow backend")
    classifier = tiny_classifier(100)
    num_samples = classifier.preprocessor.num_samples
    path = tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'tflite'}"
    mixed = batch_of(speech, [2.0] * 4)[:, :num_samples]
    mixed[0] = np.nan  # first, where a batch-wide select reads
    mixed[2, 100] = np.inf
    mixed[3, -1] = -np.inf
    batches = [mixed]
    if BACKEND == "tensorflow":
        classifier.export(str(path), format=fmt)
        batches.append(np.zeros((1, 0), np.float32))
    else:
        portable_export.export_onnx(classifier, path, batch_size=4,
                                    num_samples=num_samples)
    _, outputs = run_artifact(tmp_path, fmt, path, batches)
    (logits, scores), empty = outputs[0], outputs[1:]
    bad = [0, 2, 3]
    assert np.isnan(logits[bad]).all() and np.isnan(scores[bad]).all()
    want_logits, want_scores = expected(classifier, mixed[1:2])
    np.testing.assert_allclose(logits[1:2], want_logits, atol=ATOL, rtol=0)
    np.testing.assert_allclose(scores[1:2], want_scores, atol=ATOL, rtol=0)
    for logits, scores in empty:
        assert logits.shape == scores.shape == (1, 3)
        assert np.isnan(logits).all() and np.isnan(scores).all()


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="LiteRT export needs the TensorFlow backend")
def test_litert_fixed_shape_and_quantized(tmp_path, speech):
    # Wide enough for int8 to apply: LiteRT leaves dense kernels of up to
    # 1024 weights in float32.
    classifier = tiny_classifier(100, hidden_dim=64)
    num_samples = classifier.preprocessor.num_samples
    batches = [batch_of(speech, [2.0])[:, :num_samples]]
    path = portable_export.export_litert(
        classifier, tmp_path / "fixed.tflite", batch_size=1,
        num_samples=num_samples)
    info, outputs = run_artifact(tmp_path, "litert", path, batches)
    assert info["inputs"] == [["waveforms", [1, num_samples]]]
    assert_outputs_match(classifier, batches, outputs)

    want = expected(classifier, batches[0])[0]
    # Logits reach 5 here. int8 errs by about 0.05 (by 0.8 when
    # it quantized the filter banks and the power spectrum too); the filter
    # banks (1 MB) stay float32, hence the modest size gain of this model.
    for quantization, size, atol in (("float16", 0.8, 2e-2),
                                     ("dynamic_int8", 0.95, 0.15)):
        small = portable_export.export_litert(
            classifier, tmp_path / f"{quantization}.tflite",
            quantization=quantization)
        assert os.path.getsize(small) < size * os.path.getsize(path)
        _, [(logits, _)] = run_artifact(tmp_path, "litert", small, batches)
        np.testing.assert_allclose(logits, want, atol=atol)


def test_argument_errors(tmp_path):
    classifier = tiny_classifier(100)
    with pytest.raises(ValueError, match="quantization must be one of"):
        portable_export.export_litert(classifier, tmp_path / "m.tflite",
                                      quantization="int4")
    with pytest.raises(ValueError, match=r"\.tflite"):
        portable_export.export_litert(classifier, tmp_path / "m.lite")
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        portable_export.export_onnx(classifier, tmp_path / "m.onnx",
                                    batch_size=0)
    features_in = ASTClassifier(classifier.backbone, num_classes=3)
    with pytest.raises(ValueError, match="preprocessor"):
        portable_export.export_onnx(features_in, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


@pytest.mark.skipif(BACKEND == "tensorflow",
                    reason="TensorFlow exports both formats")
def test_other_backends_name_the_backend_to_use(tmp_path):
    classifier = tiny_classifier(100)
    with pytest.raises(NotImplementedError,
                       match="KERAS_BACKEND=tensorflow.*save_to_preset"):
        portable_export.export_litert(classifier, tmp_path / "m.tflite")
    if BACKEND == "torch":
        # Dynamic shapes need TensorFlow; the message also shows how to
        # fix the shapes instead.
        with pytest.raises(NotImplementedError,
                           match=r"KERAS_BACKEND=tensorflow.*num_samples="
                                 f"{classifier.preprocessor.num_samples}"):
            portable_export.export_onnx(classifier, tmp_path / "m.onnx")
    else:
        with pytest.raises(NotImplementedError,
                           match="KERAS_BACKEND=tensorflow"):
            classifier.export(str(tmp_path / "m.onnx"), format="onnx")
    assert not os.listdir(tmp_path)
    assert classifier.preprocessor.spectrum_method == "fft"


@pytest.mark.skipif(BACKEND != "torch", reason="torch.onnx's errors")
def test_torch_onnx_failure_is_one_line(tmp_path, monkeypatch):
    # torch.onnx's errors carry the traced graph (1,270 lines for a real
    # model): the user gets one line naming the shapes and the way out.
    import torch

    def fail(*args, **kwargs):
        raise torch.onnx.OnnxExporterError(
            "Failed to export a node\n" + "  %1 : Float(1) = graph\n" * 9)

    monkeypatch.setattr(keras.Model, "export", fail)
    classifier = tiny_classifier(100)
    with pytest.raises(RuntimeError,
                       match=r"torch.onnx could not export .* batch_size=1, "
                             r"num_samples=16240 \(OnnxExporterError: "
                             r"Failed to export a node\).*"
                             r"KERAS_BACKEND=tensorflow") as caught:
        portable_export.export_onnx(classifier, tmp_path / "m.onnx",
                                    batch_size=1, num_samples=16240)
    assert "\n" not in str(caught.value)
    assert not os.listdir(tmp_path)
    assert classifier.preprocessor.spectrum_method == "fft"


def test_matmul_spectrum_matches_fft(speech):
    clips = [clip_of(speech[0], 10.0), clip_of(speech[1], 3.3), noise(0.02)]
    fft = to_numpy(ASTAudioConverter(max_length=1024)(clips))
    matmul = to_numpy(ASTAudioConverter(max_length=1024,
                                        spectrum_method="matmul")(clips))
    np.testing.assert_allclose(matmul, fft, atol=2e-4, rtol=0)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf2onnx's registry")
def test_erfc_is_registered_once():
    # tf2onnx's registry, not a flag of ours, says whether Erfc is there.
    from tf2onnx import constants
    from tf2onnx.handler import tf_op

    def handlers():
        return [opset["Erfc"] for opset in
                tf_op.get_opsets().get(constants.ONNX_DOMAIN, [])
                if "Erfc" in opset]

    portable_export._register_tf2onnx_erfc()
    first = handlers()
    portable_export._register_tf2onnx_erfc()
    assert first and handlers() == first
