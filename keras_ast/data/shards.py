"""Writing a shard directory: audio files decoded in parallel into shards.

`make_shards` (`keras-ast make-shards`) lists an audio collection, labelled
or not (`sources`), decodes it once in a pool of worker processes (to mono
float32 at 16 kHz, `audio_io.load_audio`), writes the clips as TFRecord or
ArrayRecord shards (`records`) and finishes with the `dataset.json` index
(`info`). `FORMAT.md` describes the result. Its steps (`start_job`,
`decode_file`, `write_shard`, `finish_job`) are also those of the Apache
Beam writer, `beam_shards`.
"""

import collections
import concurrent.futures
import contextlib
import datetime
import multiprocessing
import os

import numpy as np

from keras_ast.data import audio_io
from keras_ast.data import records
from keras_ast.data.info import INFO_FILE
from keras_ast.data.info import RECORD_FORMATS
from keras_ast.data.info import DatasetInfo
from keras_ast.data.info import ShardInfo
from keras_ast.data.info import SkippedFile
from keras_ast.data.info import leftovers
from keras_ast.data.info import read_info
from keras_ast.data.info import shard_file
from keras_ast.data.info import write_info
from keras_ast.data.sources import list_source
from keras_ast.data.sources import source_fingerprint
from keras_ast.utils.files import atomic_path
from keras_ast.utils.files import sha256_file

SAMPLING_RATE = audio_io.SAMPLING_RATE
MEGABYTE = 10**6


# --- Decoding in worker processes -----------------------------------------


def decode_file(path, sampling_rate=SAMPLING_RATE):
    """One source file decoded for a shard, never raising.

    Args:
        path: the audio file.
        sampling_rate: the rate of the shards.

    Returns:
        `(audio, None)`, or `(None, reason)` for a file that does not
        decode: `reason` is what `dataset.json` lists under `skipped`.

    Examples:
    >>> audio, reason = decode_file("dog/a.wav")
    """
    try:
        return audio_io.load_audio(path, sampling_rate), None
    except audio_io.AudioDecodeError as error:
        return None, f"does not decode: {error.reason}"
    except Exception as error:  # never fatal: the file is skipped
        return None, f"does not decode: {type(error).__name__}: {error}"


def _mp_context():
    # forkserver: no fork of a process running JAX/TF/torch threads, and
    # the (slow) keras_ast import happens once, in the server.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _in_order(pool, entries, window, sampling_rate):
    for entry, future in audio_io.in_order(
            lambda entry: pool.submit(decode_file, entry.path, sampling_rate),
            entries, window):
        try:
            result = future.result()
        except concurrent.futures.process.BrokenProcessPool as error:
            raise RuntimeError(
                "A decoding worker process died (a crash in the decoder or "
                f"out of memory) while decoding {entry.path} or one of the "
                f"at most {window} files after it. Find the file with "
                "`keras_ast.data.audio_io.load_audio`, or run with one worker."
            ) from error
        yield entry, result


@contextlib.contextmanager
def _decoded(entries, num_workers, sampling_rate):
    """Yields an iterator of `(entry, (audio, reason))`, in `entries` order."""
    num_workers = min(num_workers, len(entries))
    if num_workers <= 1:
        yield ((entry, decode_file(entry.path, sampling_rate))
               for entry in entries)
        return
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=num_workers, mp_context=_mp_context()
    )
    try:
        yield _in_order(pool, entries, 4 * num_workers, sampling_rate)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- Writing shards -------------------------------------------------------


def _writer_factory(record_format):
    """`(open(path) -> writer, encode)` for a record format."""
    if record_format == "tfrecord":
        try:
            import tensorflow as tf
        except ImportError as error:
            raise ImportError(
                "Writing TFRecord shards needs TensorFlow (`pip install "
                "tensorflow`); ArrayRecord shards (the arrayrecord format) "
                "need only `array-record`."
            ) from error
        return tf.io.TFRecordWriter, records.encode_example
    try:
        from array_record.python.array_record_module import (
            ArrayRecordWriter,
        )
    except ImportError as error:
        raise ImportError(
            "Writing ArrayRecord shards needs `pip install array-record`."
        ) from error
    return (lambda path: ArrayRecordWriter(path, "group_size:1"),
            records.encode)


def write_shard(output, index, clips, record_format):
    """Writes `(entry, audio, label_ids)` clips, in order, as one shard.

    The shard is written under a temporary name and renamed when complete
    (`files.atomic_path`); an error removes the unfinished file.

    Args:
        output: the shard directory.
        index: the shard's number (its file is `info.shard_file(index, ...)`).
        clips: an iterable of `(sources.Entry, float32 audio, label ids)`.
        record_format: `"tfrecord"` or `"arrayrecord"`.

    Returns:
        `(shard, max_num_samples)`: the shard's `ShardInfo` (file,
        num_examples, sha256, class_counts) and its longest clip.

    Examples:
    >>> shard, longest = write_shard("out", 0, clips, "arrayrecord")
    """
    make_writer, encode = _writer_factory(record_format)
    file = shard_file(index, record_format)
    num_examples, max_num_samples = 0, 0
    counts = collections.Counter()
    with atomic_path(os.path.join(output, file)) as temp:
        writer = make_writer(temp)
        try:
            for entry, audio, label_ids in clips:
                writer.write(encode(audio, label_ids, entry.name))
                num_examples += 1
                counts.update(entry.labels)
                max_num_samples = max(max_num_samples, audio.shape[0])
        except BaseException:
            # The original error matters, not a failing close.
            with contextlib.suppress(Exception):
                writer.close()
            raise
        writer.close()
        digest = sha256_file(temp)
    shard = ShardInfo(file, num_examples, digest, dict(sorted(counts.items())))
    return shard, int(max_num_samples)


def _write_shards(clips, output, record_format, target_bytes):
    """Writes `(entry, audio, label_ids)` clips, in order, into shards.

    A shard is closed before the clip that would take it past
    `target_bytes` of audio (a longer clip gets a shard of its own).

    Returns:
        `(shards, max_num_samples)`: the shards' `ShardInfo`s, and the
        length of the longest clip.
    """
    clips = iter(clips)
    pending = next(clips, None)
    shards, max_num_samples = [], 0

    def one_shard():
        nonlocal pending
        num_examples, num_bytes = 0, 0
        while pending is not None and (
            num_examples == 0
            or num_bytes + pending[1].nbytes <= target_bytes
        ):
            clip = pending
            num_examples += 1
            num_bytes += clip[1].nbytes
            yield clip
            pending = next(clips, None)

    while pending is not None:
        shard, longest = write_shard(output, len(shards), one_shard(),
                                     record_format)
        shards.append(shard)
        max_num_samples = max(max_num_samples, longest)
    return shards, max_num_samples


def _remove(output, names):
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output, name))


class ShardSetExistsError(FileExistsError):
    """`make_shards`' output already holds shards and `resume` is False.

    The message names the `resume` argument; a command line may word its
    own from the attributes.

    Attributes:
        output: the shard directory.
        finished: True for a complete shard set (`resume` would reuse
            it), False for an unfinished run's files (`resume` would
            delete them and start over).
        num_examples: a complete set's examples (None if unfinished).
        num_files: an unfinished run's shard and temporary files.
    """

    def __init__(self, output, finished, num_examples=None, num_files=0):
        self.output = output
        self.finished = finished
        self.num_examples = num_examples
        self.num_files = num_files
        super().__init__(self.describe("resume=True"))

    def describe(self, resume):
        """The message, naming the resume option as `resume` says."""
        if self.finished:
            return (f"{self.output} already holds a complete shard set "
                    f"({self.num_examples} examples). Pass {resume} to "
                    "reuse it, or choose another output directory.")
        return (f"{self.output} holds {self.num_files} file(s) of shards "
                f"but no {INFO_FILE}: an earlier run did not finish. Pass "
                f"{resume} to delete them and start over, or choose "
                "another output directory.")


def _prepare_output(output, resume, fingerprint, record_format):
    """The existing info to return, or None once `output` is ready."""
    shards, temps = leftovers(output)
    if os.path.exists(os.path.join(output, INFO_FILE)):
        info = read_info(output)
        if not resume:
            raise ShardSetExistsError(output, True, info.num_examples)
        if info.source_fingerprint != fingerprint:
            raise ValueError(
                f"{output} holds shards of another list of source files "
                f"than {info.source or 'this source'!r} has now (the "
                "files or labels differ). Delete it or choose another "
                "output directory to make new shards."
            )
        if info.record_format != record_format:
            raise ValueError(
                f"{output} holds {info.record_format} shards, not "
                f"{record_format}; choose another output directory."
            )
        _remove(output, temps)
        return info
    if shards or temps:
        if not resume:
            raise ShardSetExistsError(output, False,
                                      num_files=len(shards) + len(temps))
        _remove(output, shards + temps)
    os.makedirs(output, exist_ok=True)
    return None


def _progress_bar(total, enabled):
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="file", desc="make-shards")
        except ImportError:
            pass
    return contextlib.nullcontext(None)


def make_shards(source, output, format="tfrecord", shard_size_mb=64,
                num_workers=None, progress=True, resume=False, seed=0,
                unlabelled=False):
    """Decodes an audio collection, labelled or not, into shards.

    `FORMAT.md` describes the result. Labelled sources are class folders
    or manifests with labels. Unlabelled audio is a folder whose audio
    files all sit at its top level, or a manifest without a label column
    (CSV) or key (JSON lines): its records hold no labels, and its
    `DatasetInfo` has `labels == ()` (`labelled` False). A folder with
    audio in sub-folders is read as class folders (audio files at its
    top level are then skipped, listed as "not inside a class folder"):
    for a nested unlabelled corpus (`speaker/chapter/*.flac`) pass
    `unlabelled=True`.

    Files are decoded in parallel (to mono float32 at 16 kHz,
    `audio_io.load_audio`) and written in a deterministic order: the sorted
    file list, shuffled with `seed`, so that shards mix the classes. A file
    that does not decode is skipped and listed in `dataset.json`. With
    several workers, a script that calls this needs the usual
    `if __name__ == "__main__":` guard of `multiprocessing`.

    Args:
        source: a class-folder directory, a folder of unlabelled audio, a
            CSV manifest or a JSON-lines manifest (see
            `keras_ast.data.sources`).
        output: the shard directory to write.
        format: `"tfrecord"` (tf.data) or `"arrayrecord"` (Grain).
        shard_size_mb: target size of a shard, in megabytes (10^6 bytes) of
            float32 audio; a shard is closed before the clip that would
            exceed it.
        num_workers: decoding processes; default `os.cpu_count()`. 0 or 1
            decodes in this process.
        progress: show a tqdm progress bar.
        resume: with a finished `output` made from the same file list,
            return its info instead of failing; with shards of an
            unfinished run, delete them and start over.
        seed: the shuffle of the write order; None keeps the sorted order.
        unlabelled: make unlabelled shards of every audio file under the
            folder, at any depth, or of every clip of the manifest (whose
            labels are then ignored).

    Returns:
        The `DatasetInfo` written as `dataset.json`.

    Raises:
        ShardSetExistsError: (a FileExistsError) `output` holds shards and
            `resume` is False.
        ValueError: a bad source or manifest, a resumed `output` made from
            another file list, or no file decodes.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import soundfile
        >>> root = tempfile.mkdtemp()
        >>> for label in ("no", "yes"):  # a class-folder source, 2 clips
        ...     os.makedirs(os.path.join(root, "words", label))
        ...     soundfile.write(os.path.join(root, "words", label, "a.wav"),
        ...                     np.zeros(16000), 16000)
        >>> info = make_shards(os.path.join(root, "words"),
        ...                    os.path.join(root, "shards"),
        ...                    format="arrayrecord", num_workers=0,
        ...                    progress=False)
        >>> info.labels, info.num_examples, info.shards[0].file
        (('no', 'yes'), 2, 'shard-00000.array_record')
        >>> info = make_shards(os.path.join(root, "words"),  # no labels
        ...                    os.path.join(root, "unlabelled"),
        ...                    format="arrayrecord", num_workers=0,
        ...                    progress=False, unlabelled=True)
        >>> info.labelled, info.labels, info.num_examples
        (False, (), 2)
    """
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    job, existing = start_job(source, output, format, shard_size_mb,
                              resume, seed, unlabelled)
    if existing is not None:
        return existing
    skipped = []

    def decoded_clips(results, bar):
        """The clips that decode; the others go to `skipped`."""
        for entry, (audio, reason) in results:
            if bar is not None:
                bar.update(1)
            if reason is not None:
                skipped.append(SkippedFile(entry.name, reason))
                continue
            yield entry, audio, job.label_ids_of(entry)

    with _decoded(job.order, num_workers, SAMPLING_RATE) as results, \
            _progress_bar(len(job.order), progress) as bar:
        shards, max_num_samples = _write_shards(
            decoded_clips(results, bar), job.output, job.format,
            job.target_bytes)
    return finish_job(job, shards, max_num_samples, skipped)


# --- The steps every shard writer shares ----------------------------------


class ShardJob(collections.namedtuple("ShardJob", [
        "source", "output", "format", "target_bytes", "seed", "entries",
        "skipped", "fingerprint", "labels", "label_ids", "multi_label",
        "order"])):
    """What `start_job` found: the listing, the labels and the write order.

    Attributes:
        source, output: absolute paths.
        format: the record format. target_bytes: the shard size target.
        seed: the shuffle seed (None: sorted order).
        entries: the listing (`sources.Entry`, sorted by name).
        skipped: the listing's files that cannot be labelled.
        fingerprint: `sources.source_fingerprint(entries)`.
        labels: the sorted label names (a label's id is its index);
            empty for unlabelled audio.
        label_ids: label name -> id.
        multi_label: whether a clip of labelled audio has no label or
            several (False for unlabelled audio).
        order: `entries` in write order (shuffled with `seed`).
    """

    __slots__ = ()

    def label_ids_of(self, entry):
        """The sorted label ids of an entry."""
        return sorted(self.label_ids[label] for label in entry.labels)


def start_job(source, output, format, shard_size_mb, resume, seed,
              unlabelled=False):
    """Checks the arguments, lists `source` and prepares `output`.

    Both `make_shards` and the Apache Beam writer (`beam_shards`) start
    here, so that they refuse, resume and order files alike.

    Returns:
        `(job, existing)`: a `ShardJob`, and the `DatasetInfo` of a
        finished `output` to return as it is (`resume`), or None.

    Raises:
        ValueError, FileExistsError, FileNotFoundError: as `make_shards`.

    Examples:
    >>> job, existing = start_job("audio/train", "shards/train",
    ...                           "tfrecord", 64, resume=False, seed=0)
    """
    if format not in RECORD_FORMATS:
        raise ValueError(
            f"Unknown shard format {format!r}: use one of "
            f"{sorted(RECORD_FORMATS)}."
        )
    if not shard_size_mb > 0:
        raise ValueError(f"shard_size_mb must be > 0, not {shard_size_mb}.")
    source = os.path.abspath(os.fspath(source))
    output = os.path.abspath(os.fspath(output))
    entries, skipped = list_source(source, unlabelled)
    if not entries:
        where = ("at any depth" if unlabelled
                 else "in class folders or at its top level")
        raise ValueError(
            f"No audio files in {source} (looked for "
            f"{', '.join(audio_io.AUDIO_EXTENSIONS)} {where})."
            if os.path.isdir(source) else f"The manifest {source} is empty."
        )
    fingerprint = source_fingerprint(entries)
    existing = _prepare_output(output, resume, fingerprint, format)
    labels = sorted({label for entry in entries for label in entry.labels})
    order = list(entries)
    if seed is not None:
        permutation = np.random.default_rng(seed).permutation(len(order))
        order = [order[i] for i in permutation]
    job = ShardJob(source, output, format,
                   max(1, int(shard_size_mb * MEGABYTE)), seed, entries,
                   skipped, fingerprint, labels,
                   {label: i for i, label in enumerate(labels)},
                   bool(labels) and any(len(entry.labels) != 1
                                        for entry in entries), order)
    return job, existing


def finish_job(job, shards, max_num_samples, skipped):
    """Writes `dataset.json` for the written `shards` and returns it.

    Args:
        job: `start_job`'s `ShardJob`.
        shards: `write_shard`'s `ShardInfo`s, in shard order.
        max_num_samples: the longest clip.
        skipped: the `SkippedFile`s that did not decode (the listing's
            own skipped files are added here).

    Returns:
        The `DatasetInfo` written.

    Raises:
        ValueError: no file decoded.
    """
    skipped = sorted(list(job.skipped) + list(skipped),
                     key=lambda item: item.path)
    num_examples = sum(shard.num_examples for shard in shards)
    if num_examples == 0:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise ValueError(
            f"None of the {len(job.entries)} files of {job.source} decodes "
            f"({reasons}{'; ...' if len(skipped) > 5 else ''})."
        )
    counts = collections.Counter()
    for shard in shards:
        counts.update(shard.class_counts)
    info = DatasetInfo(
        record_format=job.format,
        sampling_rate=SAMPLING_RATE,
        multi_label=job.multi_label,
        labels=job.labels,
        num_examples=num_examples,
        max_num_samples=int(max_num_samples),
        shards=shards,
        class_counts={label: counts[label] for label in job.labels},
        skipped=skipped,
        source=job.source,
        created=datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        source_fingerprint=job.fingerprint,
        seed=job.seed,
    )
    return write_info(job.output, info)
