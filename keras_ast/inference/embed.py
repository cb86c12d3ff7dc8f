"""Files and arrays in, embeddings out: `embed`.

An embedding is the backbone's pooled output with the classifier's
`pooling` (the mean of the [CLS] and distillation tokens, or of the patch
tokens, of the last layer's normalised output), before the classification
head's LayerNorm: one `hidden_dim` vector per clip, for
linear probes, nearest-neighbour search or clustering. Inputs go through
the same steps as `keras_ast.inference.classify.classify`'s
(`ScoredClips`): checked host audio, files decoded ahead on threads, each
clip embedded as if alone, a clip longer than the model's input embedded
on its start with a warning.

The model run is a small `keras.Model` (`Embedder`) over the classifier's
converter and backbone, sharing their weights: its `predict_on_batch`
compiles once per input shape (JAX, TensorFlow, or PyTorch with
`jit_compile`), as the classifier's does, and is kept per classifier so
that later calls reuse it.
"""

import weakref

import keras
import numpy as np

from keras_ast.inference.classify import ScoredClips
from keras_ast.inference.classify import converter_of
from keras_ast.inference.classify import result


class Embedder(keras.Model):
    """Waveforms in, the backbone's pooled output out.

    A scorer for `keras_ast.inference.classify`'s batching
    (`score_windows`): its "scores" are the embeddings as they come, and
    its `num_classes` the embedding width.

    Args:
        converter: the classifier's `ASTAudioConverter`.
        backbone: the classifier's `ASTBackbone`.
        pooling: the classifier's `pooling`, `"cls"` or `"mean"`.
        jit_compile: as the classifier's (`keras.Model.jit_compile`;
            None: Keras' default for the backend).
    """

    def __init__(self, converter, backbone, pooling="cls", jit_compile=None):
        super().__init__(dtype="float32", name="embedder")
        self.converter = converter
        self.backbone = backbone
        self.pooling = pooling
        self.num_classes = backbone.hidden_dim
        self.jit_compile = jit_compile

    def call(self, inputs):
        features = self.converter(inputs["waveforms"],
                                  lengths=inputs["lengths"])
        return self.backbone.pooled_output(features, pooling=self.pooling)

    def scores(self, outputs):
        """The embeddings, as float32."""
        return keras.ops.cast(outputs, "float32")


# One `Embedder` per classifier, dropped with it (the embedder refers to
# the converter and backbone only, not to the classifier).
_embedders = weakref.WeakKeyDictionary()


def embedder_of(classifier):
    """The classifier's `Embedder`, made on first use.

    A new one is made when the classifier's converter, backbone, `pooling`
    or `jit_compile` is not the cached one's.
    """
    converter = converter_of(classifier)
    jit_compile = classifier.jit_compile
    embedder = _embedders.get(classifier)
    if embedder is None or (
            embedder.converter is not converter
            or embedder.backbone is not classifier.backbone
            or embedder.pooling != classifier.pooling
            or embedder.jit_compile != jit_compile):
        embedder = Embedder(converter, classifier.backbone,
                            classifier.pooling, jit_compile)
        _embedders[classifier] = embedder
    return embedder


def embed(classifier, inputs, batch_size=32, sampling_rate=None,
          skip_errors=False, progress=False, long_inputs=None):
    """See `ASTClassifier.embed`; the arguments past its own:

    Args:
        classifier: the classifier (its `preprocessor`, `backbone` and
            `jit_compile`).
        progress: show a progress bar over the inputs (tqdm, when more
            than one).
        long_inputs: optional list: `(path, seconds)` of each input longer
            than the model's input is appended to it, instead of the
            warning (path None for an array).
    """
    embedder = embedder_of(classifier)
    whole = ScoredClips(embedder, embedder.converter, inputs, batch_size,
                        sampling_rate, skip_errors, progress, long_inputs,
                        "embed")
    results = [None] * len(whole.items)
    for index, vector in whole:
        results[index] = vector
    if whole.single:
        return result(results, whole.skipped, True, skip_errors)
    found = [vector for vector in results if vector is not None]
    embeddings = (np.stack(found) if found else
                  np.zeros((0, classifier.backbone.hidden_dim), np.float32))
    return result(embeddings, whole.skipped, False, skip_errors)
