"""keras_ast: the Audio Spectrogram Transformer for Keras 3 (JAX, TF, torch).

The model classes are imported on first use, so that light modules such as
`keras_ast.data.pipelines` load without Keras and a backend: Grain and
shard-writer worker processes import only what they run.
"""

from keras_ast.utils.lazy import lazy_attributes
from keras_ast.version import __version__

_EXPORTS = {
    "ASTAudioConverter": "keras_ast.models.audio_converter",
    "pad_waveforms": "keras_ast.inference.waveforms",
    "load_audio": "keras_ast.data.audio_io",
    "resample": "keras_ast.data.audio_io",
    "ASTBackbone": "keras_ast.models.backbone",
    "ASTClassifier": "keras_ast.models.classifier",
    "ASTEmbedding": "keras_ast.models.embedding",
    "ASTEncoderLayer": "keras_ast.models.encoder",
    "upload_preset": "keras_ast.presets.upload",
}
# Subpackages reachable as attributes (`keras_ast.data.tf_dataset`) without
# importing them, and Keras, before they are used.
_SUBPACKAGES = ("data",)

__all__ = sorted(_EXPORTS) + list(_SUBPACKAGES) + ["__version__"]
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBPACKAGES)
