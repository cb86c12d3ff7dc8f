"""keras_ast: the Audio Spectrogram Transformer for Keras 3 (JAX, TF, torch).

The public API: every name the README and the tutorials use. Names are
imported on first use (PEP 562), so that `import keras_ast` loads neither
Keras nor a backend, and light modules such as `keras_ast.data.pipelines`
stay light in Grain and shard-writer worker processes.

Examples:
>>> import keras_ast
>>> classifier = keras_ast.ASTClassifier.from_preset(
...     "ast_audioset_10_10_0.4593")
>>> classifier.classify("dog.wav", top_k=3)
"""

from keras_ast.utils.lazy import lazy_attributes
from keras_ast.version import __version__

_EXPORTS = {
    # Models and layers.
    "ASTAudioConverter": "keras_ast.models.audio_converter",
    "ASTBackbone": "keras_ast.models.backbone",
    "ASTClassifier": "keras_ast.models.classifier",
    "ASTEmbedding": "keras_ast.models.embedding",
    "ASTEncoderLayer": "keras_ast.models.encoder",
    "ASTPretrainer": "keras_ast.models.pretrainer",
    # Audio in, results out.
    "load_audio": "keras_ast.data.audio_io",
    "resample": "keras_ast.data.audio_io",
    "pad_waveforms": "keras_ast.inference.waveforms",
    "Timeline": "keras_ast.inference.timeline",
    "Event": "keras_ast.inference.timeline",
    "events_csv": "keras_ast.inference.timeline",
    # Training and evaluation.
    "train": "keras_ast.training.train",
    "TrainConfig": "keras_ast.training.config",
    "pretrain": "keras_ast.training.pretrain",
    "PretrainConfig": "keras_ast.training.config",
    "evaluate": "keras_ast.training.evaluate",
    "format_report": "keras_ast.training.evaluate",
    # Checkpoints and the Hub.
    "convert_checkpoint": "keras_ast.porting.convert",
    "upload_preset": "keras_ast.presets.upload",
    # Notebooks: TensorFlow started without its C++ log lines.
    "import_tensorflow": "keras_ast.utils.quiet_tensorflow",
}
# Subpackages reachable as attributes (`keras_ast.data.tf_dataset`) without
# importing them, and Keras, before they are used.
_SUBPACKAGES = ("data", "datasets", "plot")

__all__ = sorted(_EXPORTS) + list(_SUBPACKAGES) + ["__version__"]
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBPACKAGES)
