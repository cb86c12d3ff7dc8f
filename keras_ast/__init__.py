"""keras_ast: the Audio Spectrogram Transformer for Keras 3 (JAX, TF, torch).

The model classes are imported on first use, so that light modules such as
`keras_ast.data.pipelines` load without Keras and a backend: Grain and
shard-writer worker processes import only what they run.
"""

from keras_ast.lazy import lazy_attributes
from keras_ast.version import __version__

_EXPORTS = {
    "ASTAudioConverter": "keras_ast.audio_converter",
    "pad_waveforms": "keras_ast.waveforms",
    "load_audio": "keras_ast.data.audio_io",
    "resample": "keras_ast.data.audio_io",
    "ASTBackbone": "keras_ast.backbone",
    "ASTClassifier": "keras_ast.classifier",
    "ASTEmbedding": "keras_ast.embedding",
    "ASTEncoderLayer": "keras_ast.encoder",
    "upload_preset": "keras_ast.upload",
}
# Subpackages reachable as attributes (`keras_ast.data.tf_dataset`) without
# importing them, and Keras, before they are used.
_SUBPACKAGES = ("data",)

__all__ = sorted(_EXPORTS) + list(_SUBPACKAGES) + ["__version__"]
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBPACKAGES)
