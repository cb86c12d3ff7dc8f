"""Streaming shards into `fit`: tf.data (TFRecord) and Grain (ArrayRecord).

Both pipelines yield `(waveforms, labels)` batches: float32 waveforms
`(batch, num_samples)` at 16 kHz, and integer labels `(batch,)` for
single-label data or multi-hot float32 `(batch, num_classes)` for
multi-label data. They feed `ASTClassifier.fit` directly on every backend.
Training pipelines shuffle with a seed and take a random crop of clips
longer than `num_samples`; evaluation pipelines keep the start. Shorter
clips are zero-padded at the end. With `mixup_alpha`, batches are mixed
(`keras_ast.data.mixup`) and targets are soft one-hot (or multi-hot)
vectors. With several processes (multi-host training) each process reads
its own part of the data.

No Keras or TensorFlow import at module level: Grain worker processes load
this module and run only numpy.
"""

import logging
import os

import numpy as np

from keras_ast.data import records
from keras_ast.data.index import read_info
from keras_ast.data.mixing import mixup

logger = logging.getLogger(__name__)

_READERS = {"tfrecord": ("tf_dataset", "TFRecord"),
            "arrayrecord": ("grain_dataset", "ArrayRecord")}


def _shards(path, record_format):
    """`(info, shard paths)` of a shard directory of `record_format`."""
    info = read_info(path)
    if info["record_format"] != record_format:
        reader, kind = _READERS[record_format]
        other, _ = _READERS[info["record_format"]]
        raise ValueError(
            f"{path} holds {info['record_format']} shards; {reader} reads "
            f"{kind} shards (use {other} for them)."
        )
    files = [os.path.join(path, shard["file"]) for shard in info["shards"]]
    return info, files


def _process_shard():
    """`(index, count)` of this process among the training processes."""
    import keras

    if keras.config.backend() == "jax":
        import jax

        return jax.process_index(), jax.process_count()
    index = int(os.environ.get("KERAS_AST_PROCESS_INDEX", 0))
    count = int(os.environ.get("KERAS_AST_PROCESS_COUNT", 1))
    return index, count


def _num_samples(info, clip_seconds):
    if clip_seconds is not None:
        return int(round(clip_seconds * info["sampling_rate"]))
    return int(info["max_num_samples"])


def fit_length(audio, num_samples, rng=None):
    """Crops (randomly with `rng`, else the start) or zero-pads `audio`."""
    extra = audio.shape[0] - num_samples
    if extra > 0:
        start = int(rng.integers(0, extra + 1)) if rng is not None else 0
        return audio[start:start + num_samples]
    return np.pad(audio, (0, -extra))


def _label_target(labels, num_classes, multi_label):
    if multi_label:
        target = np.zeros(num_classes, np.float32)
        target[labels] = 1.0
        return target
    return np.int32(labels[0])


def tf_dataset(path, batch_size, training=False, clip_seconds=None, seed=0,
               shuffle_buffer=1024, repeat=False, drop_remainder=None,
               one_hot=False, mixup_alpha=None, mixup_probability=0.5):
    """A `tf.data.Dataset` of `(waveforms, labels)` from TFRecord shards.

    Reads shards in parallel (interleaved), decodes in parallel, shuffles
    with `seed` when `training`, crops or pads every clip to a fixed
    length, batches and prefetches (`AUTOTUNE`). Records that do not
    parse or hold non-finite audio are skipped and counted in
    `dataset.skipped_records` (a `tf.Variable`; at every pass when
    repeating), with a warning.

    Args:
        path: a shard directory written by `make_shards(format="tfrecord")`.
        batch_size: clips per batch.
        training: shuffle, random crops, and drop the last partial batch.
        clip_seconds: clip length; defaults to the longest clip.
        seed: shuffling and cropping seed.
        shuffle_buffer: clips held for shuffling.
        repeat: repeat forever (then pass `steps_per_epoch` to `fit`).
        drop_remainder: defaults to `training`.
        one_hot: single-label targets as one-hot float32 vectors.
        mixup_alpha: mixup's Beta parameter: a share `mixup_probability`
            of the clips of a batch are mixed with random partners
            (`keras_ast.data.mixup`); implies one-hot targets. None: no
            mixup.
        mixup_probability: the share of mixed clips.

    Example:
    >>> ds = tf_dataset("shards/train", batch_size=32, training=True,
    ...                 clip_seconds=1.0)
    >>> classifier.fit(ds, epochs=10)
    """
    import tensorflow as tf

    info, files = _shards(path, "tfrecord")
    num_samples = _num_samples(info, clip_seconds)
    num_classes = len(info["labels"])
    multi_label = bool(info["multi_label"])
    index, count = _process_shard()

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if count > 1 and len(files) >= count:
        dataset = dataset.shard(count, index)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,  # a seed gives the same stream every time
    )
    if count > 1 and len(files) < count:
        dataset = dataset.shard(count, index)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        dataset = dataset.repeat()

    spec = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
    }

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        audio = tf.io.decode_raw(example["audio"], tf.float32,
                                 little_endian=True)
        labels = tf.cast(tf.sparse.to_dense(example["labels"]), tf.int32)
        ok = tf.logical_and(tf.reduce_all(tf.math.is_finite(audio)),
                            tf.size(labels) > 0)
        ok = tf.logical_and(ok, tf.reduce_all(labels < num_classes))
        return audio, labels, ok

    skipped = tf.Variable(0, dtype=tf.int64, trainable=False,
                          name="skipped_records")

    def keep(audio, labels, ok):
        skipped.assign_add(tf.cast(tf.logical_not(ok), tf.int64))
        return ok

    def fix(index, example):
        audio, labels, _ = example
        length = tf.shape(audio)[0]
        extra = tf.maximum(length - num_samples, 0)
        if training:
            # Stateless: the crop of the i-th clip depends on (seed, i)
            # only, however many threads decode.
            start = tf.random.stateless_uniform(
                [], seed=tf.stack([tf.cast(seed, tf.int64), index]),
                maxval=extra + 1, dtype=tf.int32)
        else:
            start = 0
        audio = audio[start:start + num_samples]
        audio = tf.pad(audio, [[0, num_samples - tf.shape(audio)[0]]])
        audio = tf.ensure_shape(audio, [num_samples])
        if multi_label:
            target = tf.reduce_max(tf.one_hot(labels, num_classes), axis=0)
        elif one_hot or mixup_alpha:
            target = tf.one_hot(labels[0], num_classes)
        else:
            target = labels[0]
        return audio, target

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    # A record whose protocol buffer does not parse cannot be counted by
    # tf.data; it is skipped with a logged warning.
    dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.filter(keep).enumerate()
    dataset = dataset.map(fix,
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(
        batch_size,
        drop_remainder=training if drop_remainder is None else drop_remainder,
    )
    if mixup_alpha:
        rng = np.random.default_rng(seed)

        def mix(waveforms, targets):
            return mixup(waveforms, targets, alpha=mixup_alpha,
                         probability=mixup_probability, rng=rng)

        def mix_tf(waveforms, targets):
            mixed = tf.numpy_function(mix, [waveforms, targets],
                                      [tf.float32, tf.float32])
            mixed[0].set_shape(waveforms.shape)
            mixed[1].set_shape(targets.shape)
            return tuple(mixed)

        dataset = dataset.map(mix_tf)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    dataset.skipped_records = skipped
    dataset.info = info
    return dataset


def _parse_absl_flags():
    """Lets Grain's worker processes start outside an absl app.

    Grain 0.2.18 reads an absl flag when it starts workers and fails if no
    absl app parsed the flags (google/grain#1355): mark them parsed with
    their defaults.
    """
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _is_example(example):
    return example is not None


class _Mixup:
    """Grain transform: `mixup` of a batch (picklable for workers)."""

    def __init__(self, alpha, probability):
        self.alpha = alpha
        self.probability = probability

    def __call__(self, batch, rng):
        return mixup(batch[0], batch[1], alpha=self.alpha,
                     probability=self.probability, rng=rng)


class _Decode:
    """Grain transform: one record to `(waveform, label)`, or None if bad."""

    def __init__(self, num_samples, num_classes, multi_label, training, seed,
                 one_hot):
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.one_hot = one_hot
        self.training = training
        self.seed = seed

    def __call__(self, index, record):
        try:
            audio, labels, path = records.decode(record)
        except (ValueError, UnicodeDecodeError) as error:
            logger.warning("Skipping record %d: %s", index, error)
            return None
        if not np.isfinite(audio).all() or labels.size == 0 or (
            labels.max() >= self.num_classes
        ):
            logger.warning("Skipping record %d (%s): bad audio or labels",
                           index, path)
            return None
        rng = None
        if self.training:
            rng = np.random.default_rng([self.seed, index])
        audio = fit_length(audio, self.num_samples, rng)
        return audio, _label_target(labels, self.num_classes,
                                    self.multi_label or self.one_hot)


def grain_dataset(path, batch_size, training=False, clip_seconds=None,
                  seed=0, num_workers=0, num_epochs=1,
                  drop_remainder=None, one_hot=False, mixup_alpha=None,
                  mixup_probability=0.5,
                  read_threads=None):
    """A Grain `IterDataset` of `(waveforms, labels)` from ArrayRecord shards.

    Random access over all shards, a seeded global shuffle when
    `training`, decoding and cropping in `num_workers` worker processes,
    batching, and a per-process slice of the data for multi-host training.
    Records that do not decode are skipped with a warning.

    Args:
        path: a shard directory written by
            `make_shards(format="arrayrecord")`.
        batch_size: clips per batch.
        training: shuffle, random crops, and drop the last partial batch.
        clip_seconds: clip length; defaults to the longest clip.
        seed: shuffling and cropping seed.
        num_workers: decoding processes (0 decodes in this process).
        num_epochs: passes over the data (`None` repeats forever). Every
            pass is shuffled anew. Keras restarts a finite dataset at each
            epoch, in the same order: to train several epochs, repeat
            forever and give `fit` its `steps_per_epoch` (as `train` does).
        drop_remainder: defaults to `training`.
        one_hot: single-label targets as one-hot float32 vectors.
        mixup_alpha: mixup's Beta parameter: a share `mixup_probability`
            of the clips of a batch are mixed with random partners
            (`keras_ast.data.mixup`); implies one-hot targets. None: no
            mixup.
        mixup_probability: the share of mixed clips.
        read_threads: threads that read records in each process; defaults
            to the number of CPUs, at most 16 (Grain's default of 16
            oversubscribes a small machine).

    Example:
    >>> ds = grain_dataset("shards/train", 32, training=True, num_workers=4)
    >>> classifier.fit(ds, epochs=10)
    """
    import grain

    info, files = _shards(path, "arrayrecord")
    decode = _Decode(_num_samples(info, clip_seconds), len(info["labels"]),
                     bool(info["multi_label"]), training, seed,
                     bool(one_hot or mixup_alpha))
    index, count = _process_shard()

    dataset = grain.MapDataset.source(
        grain.sources.ArrayRecordDataSource(files))
    if count > 1:
        dataset = dataset[index::count]
    if training:
        dataset = dataset.shuffle(seed=seed)
    dataset = dataset.repeat(num_epochs)
    dataset = dataset.map_with_index(decode).filter(_is_example)
    if read_threads is None:
        read_threads = min(16, os.cpu_count() or 1)
    dataset = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads))
    dataset = dataset.batch(
        batch_size,
        drop_remainder=training if drop_remainder is None else drop_remainder,
    )
    if mixup_alpha:
        dataset = dataset.random_map(
            _Mixup(mixup_alpha, mixup_probability), seed=seed)
    if num_workers:
        _parse_absl_flags()
        dataset = dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=num_workers))
    return dataset
