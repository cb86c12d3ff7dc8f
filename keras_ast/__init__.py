"""keras_ast: the Audio Spectrogram Transformer for Keras 3 (JAX, TF, torch)."""

from keras_ast.audio_converter import ASTAudioConverter
from keras_ast.audio_converter import pad_waveforms
from keras_ast.backbone import ASTBackbone
from keras_ast.classifier import ASTClassifier
from keras_ast.embedding import ASTEmbedding
from keras_ast.encoder import ASTEncoderLayer
from keras_ast.version import __version__

__all__ = [
    "ASTAudioConverter",
    "ASTBackbone",
    "ASTClassifier",
    "ASTEmbedding",
    "ASTEncoderLayer",
    "pad_waveforms",
    "__version__",
]
