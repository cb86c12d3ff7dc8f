"""A TensorFlow SavedModel of a classifier, ready for TF Serving.

Two steps. Keras' `ExportArchive` turns the model (TensorFlow backend, or
JAX through jax2tf) into one core function, waveforms and lengths to
logits. A plain `tf.Module` then wraps it with the signatures people call,
each with named outputs and input checks that fail with a clear message
inside the graph:

- `serve` (also `serving_default`): `waveforms` float32
  `(batch, samples)` -> `logits`;
- `serve_with_lengths`: `waveforms`, `lengths` int32 `(batch,)` ->
  `logits`;
- `scores`: `waveforms` -> `scores` (sigmoid or softmax);
- `classify`: `waveforms` -> `labels` string `(batch, k)`, `scores`
  `(batch, k)`;
- `serve_wav`: `wav` string `(batch,)`, encoded WAV files -> `labels`,
  `scores`, `logits`.

Waveforms are 16 kHz mono float32 of any length (dynamic batch and
length). The label names are stored as an asset (`assets/labels.txt`).
Only TensorFlow is needed to load and serve the result.
"""

import os
import shutil
import tempfile

from keras_ast.utils.files import atomic_directory


def _core_archive(classifier, path):
    """Writes Keras' export of `classifier(waveforms, lengths)` to `path`."""
    import keras
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(classifier)
    # Serving needs no gradients; jax2tf's custom ones would also warn at
    # every load.
    options = ({"jax2tf_kwargs": {"with_gradient": False}}
               if keras.config.backend() == "jax" else {})
    archive.add_endpoint(
        "logits",
        lambda waveforms, lengths: classifier(
            {"waveforms": waveforms, "lengths": lengths}, training=False),
        input_signature=[keras.InputSpec(shape=(None, None), dtype="float32"),
                         keras.InputSpec(shape=(None,), dtype="int32")],
        **options,
    )
    archive.write_out(path, verbose=False)


def _serving_module(core, num_classes, multi_label, sampling_rate, top_k,
                    labels_path):
    """The `tf.Module` whose functions become the signatures."""
    import tensorflow as tf

    class Served(tf.Module):
        def __init__(self):
            super().__init__()
            self.core = core
            self.label_table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    labels_path, tf.int64,
                    tf.lookup.TextFileIndex.LINE_NUMBER, tf.string,
                    tf.lookup.TextFileIndex.WHOLE_LINE),
                default_value="")

        def _logits(self, waveforms, lengths=None):
            waveforms = tf.convert_to_tensor(waveforms, tf.float32)
            shape = tf.shape(waveforms)
            usable = tf.logical_and(tf.equal(tf.size(shape), 2),
                                    tf.reduce_all(shape > 0))

            def run():
                x = tf.ensure_shape(waveforms, [None, None])
                x = tf.debugging.assert_all_finite(
                    x, "waveforms contain NaN or infinite samples")
                n = (tf.fill(tf.shape(x)[:1], tf.shape(x)[1])
                     if lengths is None else lengths)
                return self.core.logits(x, tf.cast(n, tf.int32))

            def refuse():
                # A branch, so that nothing reads a bad input before this.
                with tf.control_dependencies([tf.debugging.Assert(False, [
                        "waveforms must be (batch, samples) float32 mono "
                        "audio with at least one clip and one sample (add "
                        "a batch dimension to one clip); got shape",
                        shape])]):
                    return tf.zeros([0, num_classes], tf.float32)

            return tf.cond(usable, run, refuse)

        def _scores(self, logits):
            if multi_label:
                return tf.sigmoid(logits)
            return tf.nn.softmax(logits, axis=-1)

        def _top(self, logits):
            scores = self._scores(logits)
            top = tf.math.top_k(scores, k=top_k)
            names = self.label_table.lookup(tf.cast(top.indices, tf.int64))
            return {"labels": names, "scores": top.values}

        @tf.function(input_signature=[
            tf.TensorSpec(None, tf.float32, name="waveforms")])
        def serve(self, waveforms):
            return {"logits": self._logits(waveforms)}

        @tf.function(input_signature=[
            tf.TensorSpec(None, tf.float32, name="waveforms"),
            tf.TensorSpec([None], tf.int32, name="lengths")])
        def serve_with_lengths(self, waveforms, lengths):
            return {"logits": self._logits(waveforms, lengths)}

        @tf.function(input_signature=[
            tf.TensorSpec(None, tf.float32, name="waveforms")])
        def scores(self, waveforms):
            return {"scores": self._scores(self._logits(waveforms))}

        @tf.function(input_signature=[
            tf.TensorSpec(None, tf.float32, name="waveforms")])
        def classify(self, waveforms):
            return self._top(self._logits(waveforms))

        @tf.function(input_signature=[
            tf.TensorSpec([None], tf.string, name="wav")])
        def serve_wav(self, wav):
            def decode(data):
                audio, rate = tf.audio.decode_wav(data)
                tf.debugging.Assert(
                    tf.equal(rate, sampling_rate),
                    ["WAV sampled at", rate, "Hz; the model expects",
                     sampling_rate, "Hz: resample it first"])
                mono = tf.reduce_mean(audio, axis=1)  # channels mixed down
                return mono, tf.shape(mono)[0]

            clips, lengths = tf.map_fn(
                decode, wav,
                fn_output_signature=(tf.RaggedTensorSpec([None], tf.float32),
                                     tf.int32))
            logits = self._logits(clips.to_tensor(), lengths)
            outputs = self._top(logits)
            outputs["logits"] = logits
            return outputs

    module = Served()
    signatures = {
        "serve": module.serve,
        "serving_default": module.serve,
        "serve_with_lengths": module.serve_with_lengths,
        "scores": module.scores,
        "classify": module.classify,
        "serve_wav": module.serve_wav,
    }
    return module, signatures


def export_saved_model(classifier, path, top_k=5, serving_version=None):
    """Writes `classifier` as a SavedModel with the signatures above.

    Args:
        classifier: an `ASTClassifier` with a preprocessor.
        path: the output folder (replaced whole if it exists; written
            atomically).
        top_k: labels the `classify` and `serve_wav` signatures return
            (at most the number of classes).
        serving_version: write TF Serving's layout, `path/<version>/`.

    Returns:
        The folder holding `saved_model.pb`.

    Examples:
    >>> export_saved_model(classifier, "models/ast", serving_version=1)
    'models/ast/1'
    """
    import keras

    backend = keras.config.backend()
    if backend not in ("tensorflow", "jax"):
        raise NotImplementedError(
            f"SavedModel export is not available on the {backend} backend. "
            "Save the model (`save_to_preset` or `.keras`) and export it "
            "under KERAS_BACKEND=tensorflow or jax."
        )
    if classifier.preprocessor is None:
        raise ValueError(
            "A SavedModel serves audio: give the classifier a preprocessor "
            "(an ASTAudioConverter), or export features-in models with "
            "keras.Model.export."
        )
    import tensorflow as tf

    labels = classifier.labels or [str(i)
                                   for i in range(classifier.num_classes)]
    target = path if serving_version is None else os.path.join(
        path, str(int(serving_version)))
    scratch = tempfile.mkdtemp(prefix="keras-ast-export-")
    try:
        core_path = os.path.join(scratch, "core")
        _core_archive(classifier, core_path)
        labels_path = os.path.join(scratch, "labels.txt")
        with open(labels_path, "w", encoding="utf-8") as f:
            f.write("\n".join(label.replace("\n", " ") for label in labels)
                    + "\n")
        module, signatures = _serving_module(
            tf.saved_model.load(core_path), classifier.num_classes,
            classifier.multi_label,
            classifier.preprocessor.sampling_rate,
            min(int(top_k), classifier.num_classes), labels_path)
        with atomic_directory(target) as staging:
            tf.saved_model.save(module, staging, signatures=signatures)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
