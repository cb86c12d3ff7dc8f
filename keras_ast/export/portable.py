"""ONNX and LiteRT files of a classifier: raw waveforms in, logits out.

Both formats hold the whole model, Kaldi filter banks included: the input
is float32 16 kHz mono waveforms `(batch, samples)`, named `waveforms`;
the outputs are `logits` and `scores` (sigmoid or softmax), both
`(batch, num_classes)`. A clip longer than the model's window
(`classifier.preprocessor.num_samples`) is cut to it, as in Keras.

Bad input: neither runtime has an op that raises, so where Keras and the
SavedModel refuse a clip with no samples or with a NaN or infinite sample,
these files answer NaN logits and scores for that clip (row); the other
clips of the batch get the scores they get alone. Check the answer
(`np.isnan(scores).any(axis=-1)` names the bad clips) before using it.

Keras' own exporters write the files (`keras.Model.export` with
`format="onnx"` or `"litert"`); around them this module
- computes the spectrum as a DFT matrix product instead of `ops.rfft`
  (a copy of the classifier's converter built with
  `spectrum_method="matmul"`; the classifier is left as it is): tf2onnx
  writes an `RFFT` node that onnxruntime rejects, torch.onnx has no
  `fft_rfft`, and LiteRT's builtins have no real FFT of this shape;
- teaches tf2onnx the `Erfc` op of TensorFlow's exact GELU (as `1 - Erf`);
- names the inputs, outputs and dynamic dimensions (`batch`, `samples`);
- restricts LiteRT to builtin ops (no TensorFlow "Flex" ops), so the file
  runs in the plain `ai-edge-litert` interpreter.

LiteRT files can carry float16 or int8 (dynamic-range) weights. The DFT
and mel tables stay float32 under int8, behind a select the converter
cannot fold (`ASTAudioConverter._mel_energies`): quantized with the
weights, they and the power spectrum would go to 8 bits.

What works from which backend (Keras 3.15):

| format | TensorFlow | torch | JAX |
|---|---|---|---|
| ONNX | dynamic or fixed shapes | fixed shapes only | no |
| LiteRT | dynamic or fixed shapes | no | no |

(fixed shapes: `batch_size` and `num_samples` given; "no": the error
says to export under KERAS_BACKEND=tensorflow.)

A model built or trained on another backend moves with its preset:
`classifier.save_to_preset(dir)`, then under `KERAS_BACKEND=tensorflow`
`ASTClassifier.from_preset(dir).export(path, format="onnx")`.
"""

import os
import shutil
import tempfile
import warnings

from keras_ast.utils.files import atomic_path

INPUT_NAME = "waveforms"
OUTPUT_NAMES = ("logits", "scores")
QUANTIZATIONS = (None, "float16", "dynamic_int8")


def _backend():
    import keras

    return keras.config.backend()


def _move_to_tensorflow(format_name, backend, reason):
    return NotImplementedError(
        f"{format_name} export is not available from the {backend} backend "
        f"({reason}). Export under KERAS_BACKEND=tensorflow: save the model "
        "with classifier.save_to_preset(directory), then in a process "
        "started with KERAS_BACKEND=tensorflow run "
        "ASTClassifier.from_preset(directory).export(path, "
        f"format={format_name.lower()!r})."
    )


def _check_classifier(classifier):
    if getattr(classifier, "preprocessor", None) is None:
        raise ValueError(
            "keras_ast.export.portable writes audio-in models: give the "
            "classifier a preprocessor (an ASTAudioConverter), or export a "
            "features-in model with keras.Model.export."
        )
    compute_dtype = classifier.dtype_policy.compute_dtype
    if compute_dtype != "float32":
        raise ValueError(
            f"ONNX and LiteRT exports need a float32 model; this one "
            f"computes in {compute_dtype}. Rebuild it in float32, e.g. "
            "ASTClassifier.from_preset(directory, dtype='float32')."
        )


def _check_shape(batch_size, num_samples):
    for name, value in (("batch_size", batch_size),
                        ("num_samples", num_samples)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be a positive integer or None, "
                             f"got {value}.")
    return (None if batch_size is None else int(batch_size),
            None if num_samples is None else int(num_samples))


def _matmul_converter(converter):
    """A converter equal to `converter` but for its spectrum, computed as
    a matrix product (it holds no weights: its config is all of it)."""
    config = dict(converter.get_config(), spectrum_method="matmul")
    config.pop("name", None)
    return type(converter).from_config(config)


def _serving_model(classifier, batch_size, num_samples):
    """A functional model: waveforms in, `{"logits", "scores"}` out.

    A clip with no samples, or with a NaN or infinite sample, gets NaN
    logits and scores (neither runtime has an op that raises); the other
    clips of its batch are scored as if it were not there.
    """
    import keras
    from keras import ops

    waveforms = keras.Input(shape=(num_samples,), batch_size=batch_size,
                            dtype="float32", name=INPUT_NAME)
    # x - x is 0 for a finite sample, NaN for NaN or +-inf: builtin ops of
    # every runtime, unlike is_finite. Its mean over a clip is 0 for a
    # usable clip, NaN for a bad one and for one with no samples (0 / 0).
    zeros = waveforms - waveforms
    count = ops.sum(ops.ones_like(zeros), axis=1, keepdims=True)
    unusable = ops.sum(zeros, axis=1, keepdims=True) / count
    # The model sees bad samples as silence, so that nothing computed
    # across the batch (the converter's table select reads clip 0) turns
    # the other clips' answers into confident noise. `a != a`: tf2onnx
    # writes other float selects as products, where NaN * 0 is NaN.
    clean = ops.where(ops.not_equal(zeros, zeros), 0.0, waveforms)
    features = _matmul_converter(classifier.preprocessor)(clean)
    if batch_size is not None:
        # Static again: torch.onnx infers a batch of one as unknown past
        # the converter's pads (a 1 broadcasts), then cannot read
        # LayerNormalization's shape.
        features = ops.reshape(features, (batch_size,) + features.shape[1:])
    logits = classifier({"features": features}, training=False) + unusable
    outputs = {"logits": logits,
               "scores": classifier.scores(logits) + unusable}
    model = keras.Model(waveforms, outputs, name="ast_waveforms")
    spec = keras.InputSpec(shape=(batch_size, num_samples), dtype="float32",
                           name=INPUT_NAME)
    return model, spec


def _register_tf2onnx_erfc():
    """Teaches tf2onnx `Erfc` (TensorFlow's exact GELU uses it), once:
    tf2onnx's own registry says whether it is there already."""
    import numpy as np
    from tf2onnx import constants
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    opsets = tf_op.get_opsets().get(constants.ONNX_DOMAIN, [])
    if any("Erfc" in handlers for handlers in opsets):
        return

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 (registered by the decorator)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}_one"),
                                 np.array(1, dtype))
            erf = ctx.make_node("Erf", [node.input[0]],
                                op_name_scope=node.name)
            node.type = "Sub"
            ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def _name_onnx_graph(path):
    """Names the input, the outputs and the dynamic dimensions."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    inputs = [i for i in graph.input
              if i.name not in {t.name for t in graph.initializer}]
    renames = {inputs[0].name: INPUT_NAME}
    for output, name in zip(graph.output, OUTPUT_NAMES):
        renames[output.name] = name
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in list(inputs) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    dims = inputs[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", "samples")):
        if not dim.HasField("dim_value"):
            dim.dim_param = name
    for output in graph.output:
        dim = output.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = "batch"
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_onnx(classifier, path, batch_size=None, num_samples=None,
                verbose=False, **kwargs):
    """Writes `classifier` as an ONNX file: waveforms in, logits out.

    The file runs in onnxruntime alone (no Keras, no keras_ast): input
    `waveforms` float32 `(batch, samples)`, outputs `logits` and `scores`
    `(batch, num_classes)`. By default both the batch and the length are
    dynamic: any number of clips of one length. Run clips of different
    lengths one by one: zeros padded to a clip are scored as audio. A
    clip with no samples or a NaN or infinite sample gets NaN logits and
    scores (ONNX cannot raise); the rest of its batch is unaffected.

    Backends: TensorFlow (tf2onnx), dynamic or fixed shapes. torch
    (torch.onnx) only with fixed shapes: pass both `batch_size` and
    `num_samples`, e.g. `num_samples=classifier.preprocessor.num_samples`.
    JAX: not available; export under KERAS_BACKEND=tensorflow.

    Args:
        classifier: an `ASTClassifier` with a preprocessor, float32.
        path: the `.onnx` file to write (replaced atomically).
        batch_size: fix the batch size (None: dynamic).
        num_samples: fix the number of samples per clip (None: dynamic).
        verbose: whether Keras prints its export messages.
        **kwargs: passed to `keras.Model.export`, e.g. `opset_version`.

    Returns:
        `path`.

    Examples:
    >>> export_onnx(classifier, "ast.onnx")
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession("ast.onnx")
    >>> logits, scores = session.run(None, {"waveforms": waveforms})
    >>> bad = np.isnan(scores).any(axis=-1)  # empty or non-finite clips
    """
    _check_classifier(classifier)
    batch_size, num_samples = _check_shape(batch_size, num_samples)
    backend = _backend()
    if backend == "jax":
        raise _move_to_tensorflow(
            "ONNX", backend, "Keras would need jax2onnx, which keras-ast "
            "neither requires nor tests")
    if backend == "torch" and (batch_size is None or num_samples is None):
        raise NotImplementedError(
            "ONNX export with a dynamic batch or length is not available "
            "from the torch backend (torch.onnx's tracer cannot export the "
            "shape Keras' LayerNormalization reads once it is dynamic). "
            "Either export under "
            "KERAS_BACKEND=tensorflow (save the model with "
            "classifier.save_to_preset(directory), then, in a process "
            "started with KERAS_BACKEND=tensorflow, "
            "ASTClassifier.from_preset(directory).export(path, "
            "format='onnx')), or fix the shapes: export_onnx(classifier, "
            "path, batch_size=1, "
            f"num_samples={classifier.preprocessor.num_samples})."
        )
    if backend == "tensorflow":
        _register_tf2onnx_erfc()
    path = os.fspath(path)
    with warnings.catch_warnings(), atomic_path(path) as temp:
        # Keras' tf2onnx shim probes a NumPy alias NumPy 2 warns about.
        warnings.filterwarnings("ignore", message=".*np.object",
                                category=FutureWarning)
        if backend == "torch":
            # torch.jit.trace warns about every Python value it freezes:
            # the shapes are fixed on purpose here.
            import torch

            warnings.filterwarnings("ignore",
                                    category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding")
            # Keras picks torch.onnx's TorchScript exporter, which warns
            # that it is the legacy one.
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    module=r"(keras|torch)\.")
        model, spec = _serving_model(classifier, batch_size, num_samples)
        try:
            model.export(temp, format="onnx", input_signature=[spec],
                         verbose=verbose, **kwargs)
        except Exception as error:
            if backend != "torch" or not isinstance(
                    error, torch.onnx.OnnxExporterError):
                raise
            # Its message runs on with the traced graph: one line here,
            # the whole error stays in __context__.
            raise _torch_onnx_failed(error, batch_size, num_samples) \
                from None
        _name_onnx_graph(temp)
    return path


def _torch_onnx_failed(error, batch_size, num_samples):
    """A one-line error for a failed torch.onnx export."""
    first = (str(error).strip().splitlines() or [""])[0]
    if len(first) > 160:
        first = first[:160] + "..."
    return RuntimeError(
        f"torch.onnx could not export this classifier with batch_size="
        f"{batch_size}, num_samples={num_samples} ({type(error).__name__}: "
        f"{first}). Export under KERAS_BACKEND=tensorflow instead: "
        "classifier.save_to_preset(directory), then in a process started "
        "with KERAS_BACKEND=tensorflow, ASTClassifier.from_preset("
        "directory).export(path, format='onnx')."
    )


def _litert_options(quantization):
    import tensorflow as tf

    target_spec = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if quantization is None:
        return {"target_spec": target_spec}
    if quantization == "float16":
        target_spec["supported_types"] = [tf.float16]
    return {"optimizations": [tf.lite.Optimize.DEFAULT],
            "target_spec": target_spec}


def export_litert(classifier, path, quantization=None, batch_size=None,
                  num_samples=None, verbose=False, **kwargs):
    """Writes `classifier` as a LiteRT (`.tflite`) file: waveforms in.

    The file holds builtin ops only, so the plain `ai-edge-litert`
    interpreter runs it (no TensorFlow): its `serving_default` signature
    takes `waveforms` float32 `(batch, samples)` and returns `logits` and
    `scores` `(batch, num_classes)`. By default the batch and the length
    are dynamic (the signature runner resizes the input); accelerator
    delegates often want fixed shapes: pass `batch_size` and `num_samples`
    (e.g. `classifier.preprocessor.num_samples`, the model's window). A
    clip with no samples or a NaN or infinite sample gets NaN logits and
    scores (LiteRT cannot raise); the rest of its batch is unaffected.

    Backends: TensorFlow only. From JAX or torch, export under
    KERAS_BACKEND=tensorflow.

    Args:
        classifier: an `ASTClassifier` with a preprocessor, float32.
        path: the file to write, ending in `.tflite` (replaced atomically).
        quantization: None (float32 weights), `"float16"` (float16
            weights, computed in float32: half the size) or
            `"dynamic_int8"` (int8 weights of the dense layers, dynamic-
            range quantization: a quarter of the size). The filter banks
            stay float32 under int8; float16 rounds them too.
        batch_size: fix the batch size (None: dynamic).
        num_samples: fix the number of samples per clip (None: dynamic).
        verbose: whether Keras prints its export messages.
        **kwargs: attributes of `tf.lite.TFLiteConverter`, passed to
            `keras.Model.export`.

    Returns:
        `path`.

    Examples:
    >>> export_litert(classifier, "ast.tflite", quantization="float16")
    >>> from ai_edge_litert.interpreter import Interpreter
    >>> run = Interpreter("ast.tflite").get_signature_runner()
    >>> scores = run(waveforms=waveforms)["scores"]
    >>> bad = np.isnan(scores).any(axis=-1)  # empty or non-finite clips
    """
    _check_classifier(classifier)
    batch_size, num_samples = _check_shape(batch_size, num_samples)
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {QUANTIZATIONS}, got "
            f"{quantization!r}."
        )
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"A LiteRT file name ends in '.tflite', got {path}.")
    backend = _backend()
    if backend != "tensorflow":
        reason = ("Keras exports LiteRT from TensorFlow and, through "
                  "litert-torch, from torch; keras-ast uses the first"
                  if backend == "torch" else
                  "Keras exports LiteRT from TensorFlow and torch only")
        raise _move_to_tensorflow("LiteRT", backend, reason)
    options = _litert_options(quantization)
    clash = sorted(kwargs.keys() & options.keys())
    if clash:
        raise ValueError(f"{', '.join(clash)}: set by export_litert (see "
                         "quantization); pass other converter attributes.")
    options.update(kwargs)
    with atomic_path(path) as temp:
        scratch = tempfile.mkdtemp(dir=os.path.dirname(temp))
        try:
            written = os.path.join(scratch, "model.tflite")
            model, spec = _serving_model(classifier, batch_size, num_samples)
            model.export(written, format="litert", input_signature=[spec],
                         verbose=verbose, **options)
            os.replace(written, temp)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return path
