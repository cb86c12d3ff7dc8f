"""Ready-made data sets for tutorials and tests, made on this machine.

`spoken_keywords`: words spoken by espeak-ng in many voices, written as
class folders that `keras-ast make-shards` reads. The names below are
imported on first use (PEP 562): `import keras_ast.datasets` loads
neither Keras nor a backend.

Examples:
>>> from keras_ast.datasets import make_keyword_dataset, speak
>>> make_keyword_dataset("keywords", words=["yes", "no", "up", "down"])
>>> waveform = speak("hello", voice="en-us")  # float32, 16 kHz
"""

from keras_ast.utils.lazy import lazy_attributes

_EXPORTS = {
    "make_keyword_dataset": "keras_ast.datasets.spoken_keywords",
    "speak": "keras_ast.datasets.spoken_keywords",
    "SpeechUnavailableError": "keras_ast.datasets.spoken_keywords",
}
_SUBMODULES = ("spoken_keywords",)

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBMODULES)
