"""Streaming shards into `fit`: tf.data (TFRecord) and Grain (ArrayRecord).

Both pipelines yield `(waveforms, labels)` batches: float32 waveforms
`(batch, num_samples)` at 16 kHz, and integer labels `(batch,)` for
single-label data or multi-hot float32 `(batch, num_classes)` for
multi-label data. They feed `ASTClassifier.fit` directly on every backend.
Shards of unlabelled audio (`DatasetInfo.labelled` False) yield the
waveform batches alone, so `fit` gives a model its input only; the options
that need labels (`one_hot`, `mixup_alpha`, `balanced`) are refused there.
Training pipelines shuffle with a seed and take a random crop of clips
longer than `num_samples`; evaluation pipelines keep the start. Shorter
clips are zero-padded at the end. With `mixup_alpha`, batches are mixed
(`keras_ast.data.mixup`) and targets are soft one-hot (or multi-hot)
vectors. With several processes (multi-host training) each process reads
its own part of the data (`process_part`, or the pipelines' `part`).

Integrity: both pipelines check every shard against the sha256 in
`dataset.json` when a data set is opened (`verify=True`, the default) and
refuse a damaged, truncated or missing shard up front, naming it. Hashing
reads each shard once per process (in up to 8 threads;
`info.shard_sha256` caches the digest while the file is unchanged): for a
set too large to read at every start, run `keras-ast verify-shards DIR`
once after copying and open with `verify=False`. Records lost to a read
error while streaming (a shard that changed after the check, or
`verify=False`) are skipped, counted and warned about with the shard's
name, never dropped silently: with `with_info=True` a pipeline returns
`(dataset, info)`, and `info.skipped_records` is the live count.

Both pipelines take a shard directory or its `DatasetInfo` (`read_info`);
`dataset_for` picks the pipeline of a directory's record format.

No Keras or TensorFlow import at module level: Grain worker processes load
this module and run only numpy.
"""

import logging
import os
import re
import sys

import numpy as np

from keras_ast.data import balance
from keras_ast.data import records
from keras_ast.data.info import DamagedShardError
from keras_ast.data.info import PipelineInfo
from keras_ast.data.info import as_info
from keras_ast.data.info import remedy
from keras_ast.data.info import shard_problems
from keras_ast.data.mixing import mixup
from keras_ast.data.skip_count import SkipCount

logger = logging.getLogger(__name__)

_READERS = {"tfrecord": ("tf_dataset", "TFRecord"),
            "arrayrecord": ("grain_dataset", "ArrayRecord")}


def process_part():
    """`(index, count)`: the part of the data this process reads.

    In a multi-process JAX run (`jax.distributed` initialized), JAX's
    `(jax.process_index(), jax.process_count())`: each process reads every
    count-th shard (or record) from its index on. Otherwise `(0, 1)`: the
    whole set. What the pipelines' `part=None` means.

    Examples:
    >>> process_part()
    (0, 1)
    """
    # JAX cannot be distributed unless it was imported: a process without
    # JAX (TensorFlow, PyTorch) does not import it here.
    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return 0, 1
    return jax.process_index(), jax.process_count()


def _part(part):
    """`part` checked, or `process_part()` for None."""
    if part is None:
        return process_part()
    index, count = part
    if not 0 <= index < count:
        raise ValueError(f"part={part!r}: give (index, count) with "
                         "0 <= index < count.")
    return int(index), int(count)


def _open(data, record_format, verify, part=None, label_options=None):
    """The `DatasetInfo` of a shard directory of `record_format`.

    `data` is a directory or its `DatasetInfo` (not read again). With
    `verify`, the shards are checked against their sha256 first
    (`DamagedShardError` names the bad ones); with `part`, `(index,
    count)` of a process that reads every count-th shard, only those.
    `label_options`: `{name: value}` of the options that need labels,
    refused (before any hashing) on unlabelled shards when set.
    """
    info = as_info(data)
    if info.record_format != record_format:
        reader, kind = _READERS[record_format]
        other, _ = _READERS[info.record_format]
        raise ValueError(
            f"{info.directory} holds {info.record_format} shards; {reader} "
            f"reads {kind} shards (use {other} for them)."
        )
    used = [name for name, value in (label_options or {}).items() if value]
    if used and not info.labelled:
        raise ValueError(
            f"{info.directory} holds unlabelled audio: "
            f"{', '.join(f'{name}={label_options[name]!r}' for name in used)}"
            f" needs labels. Leave {' and '.join(used)} out to stream its "
            "waveforms alone."
        )
    if verify:
        names = [shard.file for shard in info.shards]
        if part and part[1] > 1 and len(names) >= part[1]:
            names = names[part[0]::part[1]]
        bad = shard_problems(info, names)
        if bad:
            raise DamagedShardError(info, bad)
    return info


def _num_samples(info, clip_seconds):
    if clip_seconds is not None:
        return int(round(clip_seconds * info.sampling_rate))
    return int(info.max_num_samples)


def fit_length(audio, num_samples, rng=None):
    """Crops (randomly with `rng`, else the start) or zero-pads `audio`."""
    extra = audio.shape[0] - num_samples
    if extra > 0:
        start = int(rng.integers(0, extra + 1)) if rng is not None else 0
        return audio[start:start + num_samples]
    return np.pad(audio, (0, -extra))


def _max_shift(time_shift, num_samples):
    """`time_shift` (a share of the clip) in samples, checked."""
    if not 0.0 <= time_shift < 1.0:
        raise ValueError(
            f"time_shift must be a share of the clip in [0, 1), got "
            f"{time_shift}.")
    return int(time_shift * num_samples)


def shift_audio(audio, max_shift, rng):
    """Rolls `audio` circularly by a random shift in `[-max_shift,
    max_shift]` samples (circular: the clip keeps its length and its
    background, with no added silence)."""
    if max_shift <= 0:
        return audio
    return np.roll(audio, int(rng.integers(-max_shift, max_shift + 1)))


def _label_target(labels, num_classes, multi_label):
    if multi_label:
        target = np.zeros(num_classes, np.float32)
        target[labels] = 1.0
        return target
    return np.int32(labels[0])


def tf_dataset(path, batch_size, training=False, clip_seconds=None, seed=0,
               shuffle_buffer=1024, repeat=False, drop_remainder=None,
               one_hot=False, mixup_alpha=None, mixup_probability=0.5,
               verify=True, time_shift=0.0, balanced=False, part=None,
               with_info=False):
    """A `tf.data.Dataset` of `(waveforms, labels)` from TFRecord shards.

    Of unlabelled shards (`DatasetInfo.labelled` False), batches of
    waveforms alone.

    Checks the shards' sha256 (`verify`), reads shards in parallel
    (interleaved), decodes in parallel, shuffles with `seed` when
    `training`, crops or pads every clip to a fixed length, batches and
    prefetches (`AUTOTUNE`). Records that do not parse or hold non-finite
    audio, and records of a shard that cannot be read to its end (fewer
    than `dataset.json` lists: a read error or a cut-short file), are
    skipped and counted (at every pass when repeating), with a warning
    naming the shard: `with_info=True` returns the count with the data.

    Args:
        path: a shard directory written by `make_shards(format="tfrecord")`,
            or its `DatasetInfo`.
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
        verify: check every shard against its sha256 in `dataset.json`
            before reading (hashed once per process; see the module's
            notes on cost) and raise `DamagedShardError` naming the bad
            ones. False: no check; read errors are still counted.
        time_shift: with `training`, roll each clip circularly by a random
            shift of up to this share of its length (0: none).
        balanced: with `training`, draw every label about equally often
            (`keras_ast.data.balance`: each record is repeated a random
            number of times by its weight, then shuffled).
        part: `(index, count)`: read every count-th shard from the
            index-th on (of fewer shards than `count`, every count-th
            record): each of several processes its own part. None:
            `process_part()`, JAX's processes where `jax.distributed` is
            initialized, else the whole set; `(0, 1)`: the whole set.
        with_info: also return the data set's `PipelineInfo`.

    Returns:
        A `tf.data.Dataset`; with `with_info`, `(dataset, info)`: a
        `PipelineInfo`, whose `skipped_records` counts the records
        skipped so far.

    Raises:
        DamagedShardError: (a ValueError) a shard differs from its sha256.
        FileNotFoundError: no `dataset.json`, or a listed shard is missing.
        ValueError: ArrayRecord shards (`grain_dataset` reads them), or
            `one_hot`, `mixup_alpha` or `balanced` on unlabelled shards.

    Examples:
        ```python
        ds = tf_dataset("shards/train", batch_size=32, training=True,
                        clip_seconds=1.0)
        classifier.fit(ds, epochs=10)
        ```
    """
    import tensorflow as tf

    index, count = _part(part)
    info = _open(path, "tfrecord", verify, (index, count),
                 dict(one_hot=one_hot, mixup_alpha=mixup_alpha,
                      balanced=balanced))
    files = info.shard_paths()
    num_samples = _num_samples(info, clip_seconds)
    max_shift = _max_shift(time_shift, num_samples) if training else 0
    balanced = bool(balanced and training)
    num_classes = info.num_classes
    multi_label = info.multi_label
    labelled = info.labelled
    advice = remedy(info)

    spec = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
    }

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        audio = tf.io.decode_raw(example["audio"], tf.float32,
                                 little_endian=True)
        labels = tf.cast(tf.sparse.to_dense(example["labels"]), tf.int32)
        ok = tf.reduce_all(tf.math.is_finite(audio))
        if labelled:
            ok = tf.logical_and(ok, tf.size(labels) > 0)
            ok = tf.logical_and(ok, tf.reduce_all(labels < num_classes))
        return audio, labels, ok

    skipped = tf.Variable(0, dtype=tf.int64, trainable=False,
                          name="skipped_records")

    def warn_lost(file, lost, expected):
        logger.warning(
            "%s: %d of its %d records could not be read (a read error or "
            "a cut-short file; counted in skipped_records). %s",
            file.decode(), lost, expected, advice)
        return lost

    def read_shard(file, expected):
        """A shard's records, then one end marker holding how many of
        `expected` were lost: a read error (DataLossError) ends a
        TFRecord stream, and a file cut at a record boundary just ends."""
        stream = tf.data.TFRecordDataset(file).map(
            parse, num_parallel_calls=tf.data.AUTOTUNE)
        # A record that does not parse, or a read error, is logged by
        # tf.data and counted below as lost.
        stream = stream.ignore_errors(log_warning=True)
        stream = stream.map(lambda audio, labels, ok: (
            audio, labels, ok, tf.constant(False)))
        stream = stream.concatenate(tf.data.Dataset.from_tensors((
            tf.zeros([0], tf.float32), tf.zeros([0], tf.int32),
            tf.constant(False), tf.constant(True))))

        def tally(read, element):
            audio, labels, ok, last = element
            lost = tf.where(last, tf.maximum(expected - read, 0),
                            tf.constant(0, tf.int64))
            lost = tf.cond(lost > 0, lambda: tf.numpy_function(
                warn_lost, [file, lost, expected], tf.int64,
                stateful=True), lambda: lost)
            return read + 1, (audio, labels, ok, tf.reshape(lost, []), last)

        return stream.scan(tf.constant(0, tf.int64), tally)

    def keep(audio, labels, ok, lost, last):
        # A bad record counts one; an end marker, its shard's lost ones.
        bad = tf.logical_and(tf.logical_not(ok), tf.logical_not(last))
        skipped.assign_add(lost + tf.cast(bad, tf.int64))
        return ok

    counts = tf.constant([shard.num_examples for shard in info.shards],
                         tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices((files, counts))
    if count > 1 and len(files) >= count:
        dataset = dataset.shard(count, index)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        read_shard,
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,  # a seed gives the same stream every time
    )
    dataset = dataset.filter(keep)
    if count > 1 and len(files) < count:
        dataset = dataset.shard(count, index)
    if training and not balanced:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        dataset = dataset.repeat()
    if balanced:
        # After repeat, so each pass draws anew; the shuffle after spreads
        # the copies of a record apart.
        dataset = _repeat_by_weight(dataset, info, seed)
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)

    def fix(index, example):
        audio, labels = example[:2]
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
        if max_shift:
            shift = tf.random.stateless_uniform(
                [], seed=tf.stack([tf.cast(seed, tf.int64) + 1, index]),
                minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32)
            audio = tf.roll(audio, shift, axis=0)
        if not labelled:
            return audio
        if multi_label:
            target = tf.reduce_max(tf.one_hot(labels, num_classes), axis=0)
        elif one_hot or mixup_alpha:
            target = tf.one_hot(labels[0], num_classes)
        else:
            target = labels[0]
        return audio, target

    dataset = dataset.enumerate()
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
    if with_info:
        return dataset, PipelineInfo.of(info, skipped)
    return dataset


def _repeat_by_weight(dataset, info, seed):
    """Each `(audio, labels, ...)` element, repeated a random number of
    times with mean `balance.expected_draws(info) * weight(labels)`
    (stochastic rounding, stateless in `(seed, position)`)."""
    import tensorflow as tf

    per_label = tf.constant(balance.label_weights(info)
                            * balance.expected_draws(info), tf.float64)

    def copies(position, example):
        audio, labels = example[:2]
        mean = tf.reduce_sum(tf.gather(per_label, labels))
        draw = tf.random.stateless_uniform(
            [], seed=tf.stack([tf.cast(seed, tf.int64) + 2, position]),
            dtype=tf.float64)
        times = tf.cast(tf.floor(mean + draw), tf.int64)
        return tf.data.Dataset.from_tensors((audio, labels)).repeat(times)

    return dataset.enumerate().flat_map(copies)


# The absl flag Grain reads when it starts worker processes.
_GRAIN_WORKER_FLAG = "grain_enable_multiprocess_worker_profiling"


def _let_grain_start_workers():
    """Lets Grain start worker processes outside an absl app.

    The one process-wide change the pipelines make, and why it must be:
    Grain up to 0.2.18 (with JAX's profiler installed) reads its absl flag
    `--grain_enable_multiprocess_worker_profiling` when it starts workers
    (in its own threads, after `grain_dataset` returns), which raises
    `UnparsedFlagAccessError` unless an absl app parsed the flags
    (google/grain#1355, fixed after 0.2.18 by google/grain#1362); no
    Grain option avoids the read. So, only with such a Grain, when
    workers are asked for and nothing parsed the flags, that one flag is
    marked present (as Grain marks its flags in its workers): its value
    stays its default, and every other flag, and whether absl counts the
    flags as parsed, are left alone.
    """
    from importlib import metadata

    from absl import flags

    if flags.FLAGS.is_parsed() or _version(metadata.version("grain")) > (
            0, 2, 18) or _GRAIN_WORKER_FLAG not in flags.FLAGS:
        return
    flag = flags.FLAGS[_GRAIN_WORKER_FLAG]
    flag.present = max(flag.present, 1)


def _version(text):
    """`"0.2.18"` (or `"0.2.18rc1"`) -> `(0, 2, 18)`."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _refuse_in_worker_bootstrap(num_workers):
    """Stops a spawned process that re-runs a script's unguarded call.

    Grain starts its workers with multiprocessing's "spawn": each runs the
    main script again, as `__mp_main__`, before its own work. A
    `grain_dataset(num_workers=...)` call at the script's top level then
    runs in every worker, whose start of more workers fails with
    multiprocessing's bootstrapping RuntimeError (and a traceback per
    worker). This exits such a worker with one line naming the fix;
    SystemExit prints its message alone, and the training process reports
    the worker's exit.
    """
    import multiprocessing

    # `_inheriting` is the flag multiprocessing itself checks for that
    # error (multiprocessing.spawn._check_not_importing_main): set while a
    # spawned child imports the main script, and only then.
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    raise SystemExit(
        f"keras_ast: grain_dataset(num_workers={num_workers}) was called "
        "again in a worker process (workers re-run the script's top "
        "level): put the script's work under "
        "`if __name__ == \"__main__\":`.")


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


class _ArrayRecords:
    """Grain source: the records of ArrayRecord shards, by global index.

    A record that cannot be read (Riegeli's "Corrupted Riegeli/records
    file": the shard changed after it was checked, or `verify=False`) is
    None, counted in `skipped` and warned about with its shard, so a long
    run neither stops hours in nor loses it silently. Picklable for Grain's
    worker processes (the shards are opened in each).
    """

    def __init__(self, info, skipped):
        import grain

        files = info.shard_paths()
        self.files = files
        self.starts = np.cumsum(
            [0] + [shard.num_examples for shard in info.shards])
        self.skipped = skipped
        self.advice = remedy(info)
        try:
            self.source = grain.sources.ArrayRecordDataSource(files)
        except RuntimeError as error:  # a damaged footer, or cut short
            bad = {}
            for file in files:
                try:
                    grain.sources.ArrayRecordDataSource([file])
                except RuntimeError as one:
                    bad[os.path.basename(file)] = f"does not open ({one})"
            if not bad:
                raise
            raise DamagedShardError(info, bad) from error

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        try:
            return self.source[index]
        except RuntimeError as error:
            shard = int(np.searchsorted(self.starts, index, side="right")) - 1
            file = self.files[min(shard, len(self.files) - 1)]
            self.skipped.add(f"{file} record {index}: {error}")
            logger.warning(
                "Skipping record %d of %s: it cannot be read (%s; counted "
                "in skipped_records). %s", index, file, error, self.advice)
            return None

    def __getitems__(self, indices):
        try:
            return self.source.__getitems__(indices)
        except RuntimeError:  # find which records fail, one by one
            return [self[index] for index in indices]


class _Decode:
    """Grain transform: one record to `(waveform, label)` (the waveform
    alone for unlabelled shards, `num_classes` 0), or None if bad.

    An unreadable record (None from `_ArrayRecords`) was counted there;
    a record that does not decode is counted in `skipped`.
    """

    def __init__(self, num_samples, num_classes, multi_label, training, seed,
                 one_hot, skipped, max_shift=0):
        self.num_samples = num_samples
        self.max_shift = max_shift
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.one_hot = one_hot
        self.training = training
        self.seed = seed
        self.skipped = skipped

    def __call__(self, index, record):
        if record is None:
            return None
        try:
            audio, labels, path = records.decode(record)
        except (ValueError, UnicodeDecodeError) as error:
            logger.warning("Skipping record %d: %s", index, error)
            self.skipped.add(f"record {index}: {error}")
            return None
        labelled = self.num_classes > 0
        if not np.isfinite(audio).all() or labelled and (
            labels.size == 0 or labels.max() >= self.num_classes
        ):
            logger.warning("Skipping record %d (%s): bad audio or labels",
                           index, path)
            self.skipped.add(f"record {index} ({path}): bad audio or labels")
            return None
        rng = None
        if self.training:
            rng = np.random.default_rng([self.seed, index])
        audio = fit_length(audio, self.num_samples, rng)
        if rng is not None:
            audio = shift_audio(audio, self.max_shift, rng)
        if not labelled:
            return audio
        return audio, _label_target(labels, self.num_classes,
                                    self.multi_label or self.one_hot)


def grain_dataset(path, batch_size, training=False, clip_seconds=None,
                  seed=0, num_workers=0, num_epochs=1,
                  drop_remainder=None, one_hot=False, mixup_alpha=None,
                  mixup_probability=0.5,
                  read_threads=None, verify=True, start_example=0,
                  time_shift=0.0, balanced=False, part=None,
                  with_info=False):
    """A Grain `IterDataset` of `(waveforms, labels)` from ArrayRecord shards.

    Of unlabelled shards (`DatasetInfo.labelled` False), batches of
    waveforms alone.

    Checks the shards' sha256 (`verify`), then random access over all
    shards, a seeded global shuffle when `training`, decoding and cropping
    in `num_workers` worker processes, batching, and a per-process slice of
    the data for multi-host training. Records that cannot be read or do
    not decode are skipped with a warning (naming the shard of an
    unreadable one) and counted (in every pass, and by worker processes
    too): `with_info=True` returns the count with the data.

    Args:
        path: a shard directory written by
            `make_shards(format="arrayrecord")`, or its `DatasetInfo`.
        batch_size: clips per batch.
        training: shuffle, random crops, and drop the last partial batch.
        clip_seconds: clip length; defaults to the longest clip.
        seed: shuffling and cropping seed.
        num_workers: decoding processes (0 decodes in this process).
            They are spawned and run the main script's top level again:
            call this under `if __name__ == "__main__":` (a worker that
            reaches this call exits with a line saying so). Outside an
            absl app, Grain 0.2.18 reads one of its absl flags when it
            starts them: that flag is marked present, its value unchanged
            (`_let_grain_start_workers`).
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
        verify: check every shard against its sha256 in `dataset.json`
            before reading (hashed once per process; see the module's
            notes on cost) and raise `DamagedShardError` naming the bad
            ones. False: no check; read errors are still counted.
        start_example: begin this far into the stream (counted in
            examples over all passes, of this process), as if that many had
            been read: the same order, crops and per-pass shuffles follow,
            and nothing is read to get there. A resumed run passes the
            examples its finished epochs consumed.
        time_shift: with `training`, roll each clip circularly by a random
            shift of up to this share of its length (0: none).
        balanced: with `training`, draw records with replacement, weighted
            so that every label is drawn about equally often
            (`keras_ast.data.balance`; reads every record's labels once per
            process); a pass is still `num_examples` draws.
        part: `(index, count)`: read every count-th record from the
            index-th on (each of several processes its own part). None:
            `process_part()`, as `tf_dataset`'s; `(0, 1)`: the whole set.
        with_info: also return the data set's `PipelineInfo`.

    Returns:
        A Grain `IterDataset`; with `with_info`, `(dataset, info)`: a
        `PipelineInfo`, whose `skipped_records` counts the records
        skipped so far (its `skip_count.reasons()` says which and why).

    Raises:
        DamagedShardError: (a ValueError) a shard differs from its sha256
            or does not open.
        FileNotFoundError: no `dataset.json`, or a listed shard is missing.
        ValueError: TFRecord shards (`tf_dataset` reads them), or
            `one_hot`, `mixup_alpha` or `balanced` on unlabelled shards.

    Examples:
        ```python
        ds = grain_dataset("shards/train", 32, training=True, num_workers=4)
        classifier.fit(ds, epochs=10)
        ```
    """
    if num_workers:
        _refuse_in_worker_bootstrap(num_workers)
    import grain

    index, count = _part(part)
    info = _open(path, "arrayrecord", verify,
                 label_options=dict(one_hot=one_hot, mixup_alpha=mixup_alpha,
                                    balanced=balanced))
    skipped = SkipCount()
    num_samples = _num_samples(info, clip_seconds)
    decode = _Decode(num_samples, info.num_classes, info.multi_label,
                     training, seed, bool(one_hot or mixup_alpha), skipped,
                     _max_shift(time_shift, num_samples) if training else 0)

    source = _ArrayRecords(info, skipped)
    if training and balanced:
        # Positions of the stream, each drawing a record by its weight.
        dataset = grain.MapDataset.range(len(source))
    else:
        dataset = grain.MapDataset.source(source)
    if count > 1:
        dataset = dataset[index::count]
    if training and not balanced:
        dataset = dataset.shuffle(seed=seed)
    dataset = dataset.repeat(num_epochs)
    if training and balanced:
        weights = balance.record_weights(balance.record_labels(info), info)
        dataset = dataset.map_with_index(
            balance.WeightedDraw(weights, seed, salt=index))
        dataset = dataset.map(source.__getitem__)  # the drawn record
    dataset = dataset.map_with_index(decode).filter(_is_example)
    if start_example:
        # Random access: the indices (and so each clip's crop) are those
        # of the whole stream.
        dataset = dataset[start_example:]
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
        _let_grain_start_workers()
        # Batches come back through a pipe, not Grain's shared memory: a
        # shared block is freed by a thread pool when its last array is
        # deleted, and blocks still queued there when the script ends
        # (the last batches) are never freed, which multiprocessing's
        # resource tracker reports as "leaked shared_memory objects".
        # Grain puts a batch in shared memory when batching is the last
        # transform before `mp_prefetch` (here the options are) or when an
        # array has at least `min_shm_size` bytes. The pipe costs copies,
        # in Grain's reading threads (benchmarks/README.md).
        dataset = grain.experimental.WithOptionsIterDataset(
            dataset, grain.experimental.DatasetOptions(min_shm_size=2**62))
        dataset = dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=num_workers))
    if with_info:
        return dataset, PipelineInfo.of(info, skipped)
    return dataset


# The options `tf_dataset` and `grain_dataset` share, as `dataset_for`
# passes them on.
_SHARED_OPTIONS = ("training", "clip_seconds", "seed", "drop_remainder",
                   "one_hot", "mixup_alpha", "mixup_probability", "verify",
                   "time_shift", "balanced", "part")


def dataset_for(path, batch_size, *, repeat=False, num_workers=0,
                start_example=0, with_info=False, **options):
    """The pipeline of a shard directory's record format.

    `tf_dataset` for TFRecord shards, `grain_dataset` for ArrayRecord
    shards, with the options they share: what training and evaluation
    open, whatever the format. Of unlabelled shards, batches of waveforms
    alone.

    Args:
        path: a shard directory, or its `DatasetInfo` (`dataset.json` is
            read once, here, and the pipeline is handed the result).
        batch_size: clips per batch.
        repeat: stream forever (every pass reshuffled when training); False:
            one pass.
        num_workers: Grain's decoding processes (ArrayRecord shards;
            tf.data decodes on its own threads).
        start_example: ArrayRecord shards: begin this far into the stream,
            as `grain_dataset`'s. A TFRecord stream cannot start mid-way
            without reading up to there, and starts at its beginning.
        with_info: also return the data set's `PipelineInfo`.
        **options: `training`, `clip_seconds`, `seed`, `drop_remainder`,
            `one_hot`, `mixup_alpha`, `mixup_probability`, `verify`,
            `time_shift`, `balanced` and `part`, as both pipelines take
            them.

    Returns:
        The dataset (a `tf.data.Dataset` or a Grain `IterDataset`); with
        `with_info`, `(dataset, info)`.

    Raises:
        TypeError: an option the two pipelines do not share.
        FileNotFoundError, ValueError: as the pipeline's.

    Examples:
        ```python
        train = dataset_for("shards/train", 32, training=True, repeat=True)
        ```
    """
    unknown = sorted(set(options) - set(_SHARED_OPTIONS))
    if unknown:
        raise TypeError(
            f"dataset_for() got options that tf_dataset and grain_dataset "
            f"do not share: {', '.join(unknown)}.")
    info = as_info(path)
    if info.record_format == "tfrecord":
        return tf_dataset(info, batch_size, repeat=repeat,
                          with_info=with_info, **options)
    return grain_dataset(info, batch_size, num_workers=num_workers,
                         num_epochs=None if repeat else 1,
                         start_example=start_example, with_info=with_info,
                         **options)
