"""Data sets for AST: audio shards, tf.data and Grain pipelines, augmentation.

The names below are imported on first use (PEP 562), so that
`import keras_ast.data` and its numpy-only modules (`pipelines`, `shards`,
`mixing`, ...) load neither Keras nor a backend: Grain and shard-writer
worker processes import only what they run. `SpecAugment` imports Keras
when it is first used. Decoding one file: `keras_ast.load_audio`.

Examples:
>>> from keras_ast import data
>>> data.make_shards("my_audio/train", "shards/train", format="arrayrecord")
>>> train, info = data.grain_dataset("shards/train", 32, training=True,
...                                  clip_seconds=1.0, mixup_alpha=10.0,
...                                  with_info=True)
>>> info.labels, info.skipped_records
"""

from keras_ast.utils.lazy import lazy_attributes

_EXPORTS = {
    "make_shards": "keras_ast.data.shards",
    "DatasetInfo": "keras_ast.data.info",
    "read_info": "keras_ast.data.info",
    "verify_shards": "keras_ast.data.info",
    "tf_dataset": "keras_ast.data.pipelines",
    "grain_dataset": "keras_ast.data.pipelines",
    "dataset_for": "keras_ast.data.pipelines",
    "mixup": "keras_ast.data.mixing",
    "SpecAugment": "keras_ast.data.spec_augment",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
