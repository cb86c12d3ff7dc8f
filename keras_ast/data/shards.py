"""Audio files -> shards of decoded clips (`keras-ast make-shards`).

`make_shards` decodes a labelled audio collection once, to mono float32 at
16 kHz, and writes it as TFRecord or ArrayRecord shards with a
`dataset.json` index; `FORMAT.md` describes the result. `read_info` opens
that index.

A source is one of:
- a folder with one sub-folder per class: the label of a file is the name
  of the class folder it is in (at any depth below it);
- a CSV manifest (`.csv`) with a `path` column and a `label` or `labels`
  column, several labels of one clip separated by `;`;
- a JSON-lines manifest (`.jsonl`, `.ndjson` or `.json`), one object a line:
  `{"path": ..., "label": "dog"}` or `{"path": ..., "labels": ["a", "b"]}`.

Relative paths in a manifest are relative to the manifest's folder. A path
listed several times gets the union of its labels. The data is multi-label
when any clip has no label or more than one.
"""

import collections
import concurrent.futures
import contextlib
import csv
import datetime
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import tempfile

import numpy as np

from keras_ast.data import audio_io
from keras_ast.data import records
from keras_ast.files import publish
from keras_ast.files import sha256_file

FORMAT_NAME = "keras_ast.shards"
FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
SAMPLING_RATE = audio_io.SAMPLING_RATE
# record format -> shard file extension.
RECORD_FORMATS = {"tfrecord": ".tfrecord", "arrayrecord": ".array_record"}
MEGABYTE = 10**6
SHARD_FILE = re.compile(r"^shard-\d{5,}\.(tfrecord|array_record)$")
TEMP_PREFIX = ".tmp-"
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")
REQUIRED_KEYS = ("format", "version", "record_format", "sampling_rate",
                 "multi_label", "labels", "num_examples", "max_num_samples",
                 "shards", "class_counts", "skipped")

Entry = collections.namedtuple("Entry", ["path", "name", "labels"])
Entry.__doc__ = """One source clip: `path` (absolute), `name` (as recorded:
relative to the source folder or manifest folder where it is below it) and
`labels` (sorted tuple of label names)."""


# --- Listing the source ---------------------------------------------------


def _is_audio(name):
    return name.lower().endswith(audio_io.AUDIO_EXTENSIONS)


def _record_name(path, base):
    relative = os.path.relpath(path, base)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return path.replace(os.sep, "/")
    return relative.replace(os.sep, "/")


def _split_labels(value):
    if value is None:
        return []
    return [part.strip() for part in str(value).split(";") if part.strip()]


def _list_class_folders(source):
    entries, skipped = [], []
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if name.startswith("."):
            continue
        if os.path.isfile(path):
            if _is_audio(name):
                skipped.append({"path": name,
                                "reason": "not inside a class folder"})
            continue
        for folder, dirs, files in os.walk(path, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(files):
                if _is_audio(file) and not file.startswith("."):
                    full = os.path.join(folder, file)
                    entries.append(
                        Entry(full, _record_name(full, source), (name,))
                    )
    return entries, skipped


def _read_csv(manifest):
    rows = []
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [column.strip() for column in next(reader, [])]
        if "path" not in header:
            raise ValueError(
                f"{manifest}: a CSV manifest needs a `path` column (and a "
                f"`label` or `labels` column); its header is {header}."
            )
        label_column = next(
            (c for c in ("labels", "label") if c in header), None
        )
        if label_column is None:
            raise ValueError(
                f"{manifest}: a CSV manifest needs a `label` or `labels` "
                f"column; its header is {header}."
            )
        path_index = header.index("path")
        label_index = header.index(label_column)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= path_index or not row[path_index].strip():
                raise ValueError(
                    f"{manifest}, line {reader.line_num}: no path."
                )
            value = row[label_index] if len(row) > label_index else ""
            rows.append((row[path_index].strip(), _split_labels(value),
                         reader.line_num))
    return rows


def _read_jsonl(manifest):
    rows = []
    with open(manifest, encoding="utf-8-sig") as f:
        for line_num, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{manifest}, line {line_num}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not JSON ({error}).") from None
            if not isinstance(item, dict) or not isinstance(
                item.get("path"), str
            ):
                raise ValueError(
                    f'{where}: expected {{"path": ..., "label": ...}} or '
                    f'{{"path": ..., "labels": [...]}}.'
                )
            if "labels" in item:
                labels = item["labels"]
                if isinstance(labels, str):
                    labels = _split_labels(labels)
            elif "label" in item:
                labels = item["label"]
                labels = ([labels] if isinstance(labels, (str, int))
                          else labels)
            else:
                raise ValueError(f"{where}: no `label` or `labels`.")
            if not isinstance(labels, list) or not all(
                isinstance(label, (str, int)) for label in labels
            ):
                raise ValueError(
                    f"{where}: labels must be a string or a list of strings."
                )
            labels = [str(label).strip() for label in labels]
            rows.append((item["path"], [x for x in labels if x], line_num))
    return rows


def _list_manifest(manifest):
    if manifest.lower().endswith(".csv"):
        rows = _read_csv(manifest)
    else:
        rows = _read_jsonl(manifest)
    base = os.path.dirname(manifest)
    merged = {}
    for path, labels, _ in rows:
        full = os.path.normpath(
            os.path.join(base, os.path.expanduser(path))
        )
        name = _record_name(full, base)
        if name in merged:
            merged[name] = (full, merged[name][1] | set(labels))
        else:
            merged[name] = (full, set(labels))
    entries = [Entry(full, name, tuple(sorted(labels)))
               for name, (full, labels) in merged.items()]
    return entries, []


def list_source(source):
    """The clips of `source`, sorted by name.

    Returns:
        `(entries, skipped)`: a list of `Entry`, and `{"path", "reason"}`
        dicts for audio files that cannot be labelled.
    """
    source = os.path.abspath(os.fspath(source))
    if os.path.isdir(source):
        entries, skipped = _list_class_folders(source)
    elif os.path.isfile(source):
        if not source.lower().endswith((".csv",) + JSONL_EXTENSIONS):
            raise ValueError(
                f"{source}: a manifest must be a .csv or a JSON-lines "
                "(.jsonl, .ndjson, .json) file; a class-folder source must "
                "be a directory."
            )
        entries, skipped = _list_manifest(source)
    else:
        raise FileNotFoundError(f"The source {source} does not exist.")
    entries.sort(key=lambda entry: entry.name)
    return entries, skipped


def source_fingerprint(entries):
    """sha256 of the sorted `(name, labels)` list of a source."""
    listing = [[entry.name, list(entry.labels)]
               for entry in sorted(entries, key=lambda e: e.name)]
    text = json.dumps(listing, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- Decoding in worker processes -----------------------------------------


def _decode_task(path, sampling_rate):
    """`(audio, None)`, or `(None, reason)` for a file that does not decode."""
    try:
        return audio_io.decode(path, sampling_rate), None
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
    entries = iter(entries)
    pending = collections.deque(
        (entry, pool.submit(_decode_task, entry.path, sampling_rate))
        for entry in itertools.islice(entries, window)
    )
    while pending:
        entry, future = pending.popleft()
        try:
            result = future.result()
        except concurrent.futures.process.BrokenProcessPool as error:
            raise RuntimeError(
                "A decoding worker process died (a crash in the decoder or "
                f"out of memory) while decoding {entry.path} or one of the "
                f"{len(pending)} files after it. Find the file with "
                "`keras_ast.data.audio_io.decode`, or run with one worker."
            ) from error
        following = next(entries, None)
        if following is not None:
            pending.append((following, pool.submit(
                _decode_task, following.path, sampling_rate)))
        yield entry, result


@contextlib.contextmanager
def _decoded(entries, num_workers, sampling_rate):
    """Yields an iterator of `(entry, (audio, reason))`, in `entries` order."""
    num_workers = min(num_workers, len(entries))
    if num_workers <= 1:
        yield ((entry, _decode_task(entry.path, sampling_rate))
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
                "tensorflow`); ArrayRecord shards (format='arrayrecord') "
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


class _ShardWriter:
    """One shard, written to a temporary file and renamed when finished."""

    def __init__(self, directory, index, record_format):
        self.directory = directory
        self.file = f"shard-{index:05d}{RECORD_FORMATS[record_format]}"
        make_writer, self._encode = _writer_factory(record_format)
        fd, self.temp = tempfile.mkstemp(
            prefix=f"{TEMP_PREFIX}{self.file}-", dir=directory
        )
        os.close(fd)
        self._writer = None
        try:
            self._writer = make_writer(self.temp)
        except BaseException:
            self.abort()
            raise
        self.num_examples = 0
        self.num_bytes = 0
        self.class_counts = collections.Counter()

    def write(self, audio, label_ids, name, labels):
        self._writer.write(self._encode(audio, label_ids, name))
        self.num_examples += 1
        self.num_bytes += audio.nbytes
        self.class_counts.update(labels)

    def finish(self):
        self._writer.close()
        self._writer = None
        digest = sha256_file(self.temp)
        publish(self.temp)
        os.replace(self.temp, os.path.join(self.directory, self.file))
        return {
            "file": self.file,
            "num_examples": self.num_examples,
            "sha256": digest,
            "class_counts": dict(sorted(self.class_counts.items())),
        }

    def abort(self):
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(OSError):
            os.remove(self.temp)


def _write_json_atomic(path, data):
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{os.path.basename(path)}-", dir=directory
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        publish(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


def _leftovers(output):
    """Shard and temporary files of an earlier run in `output`."""
    if not os.path.isdir(output):
        return [], []
    names = sorted(os.listdir(output))
    shards = [name for name in names if SHARD_FILE.match(name)]
    temps = [name for name in names if name.startswith(TEMP_PREFIX)
             and (name.startswith(TEMP_PREFIX + "shard-")
                  or name.startswith(TEMP_PREFIX + INFO_FILE))]
    return shards, temps


def _remove(output, names):
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output, name))


def _prepare_output(output, resume, fingerprint, record_format):
    """The existing info to return, or None once `output` is ready."""
    shards, temps = _leftovers(output)
    if os.path.exists(os.path.join(output, INFO_FILE)):
        info = read_info(output)
        if not resume:
            raise FileExistsError(
                f"{output} already holds a complete shard set "
                f"({info['num_examples']} examples). Pass resume=True "
                "(--resume) to reuse it, or choose another output directory."
            )
        if info.get("source_fingerprint") != fingerprint:
            raise ValueError(
                f"{output} holds shards of another list of source files "
                f"than {info.get('source', 'this source')!r} has now (the "
                "files or labels differ). Delete it or choose another "
                "output directory to make new shards."
            )
        if info["record_format"] != record_format:
            raise ValueError(
                f"{output} holds {info['record_format']} shards, not "
                f"{record_format}; choose another output directory."
            )
        _remove(output, temps)
        return info
    if shards or temps:
        if not resume:
            raise FileExistsError(
                f"{output} holds {len(shards)} shard file(s) and "
                f"{len(temps)} temporary file(s) but no {INFO_FILE}: an "
                "earlier run did not finish. Pass resume=True (--resume) to "
                "delete them and start over, or choose another output "
                "directory."
            )
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
                num_workers=None, progress=True, resume=False, seed=0):
    """Decodes a labelled audio collection into shards (see `FORMAT.md`).

    Files are decoded in parallel (to mono float32 at 16 kHz,
    `audio_io.decode`) and written in a deterministic order: the sorted file
    list, shuffled with `seed`, so that shards mix the classes. A file
    that does not decode is skipped and listed in `dataset.json`. With
    several workers, a script that calls this needs the usual
    `if __name__ == "__main__":` guard of `multiprocessing`.

    Args:
        source: a class-folder directory, a CSV manifest or a JSON-lines
            manifest (see the module doc).
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

    Returns:
        The `dataset.json` content (a dict).

    Raises:
        FileExistsError: `output` holds shards and `resume` is False.
        ValueError: a bad source or manifest, a resumed `output` made from
            another file list, or no file decodes.

    Example:
    >>> info = make_shards("speech_commands/train", "shards/train",
    ...                    format="arrayrecord")
    """
    if format not in RECORD_FORMATS:
        raise ValueError(
            f"Unknown shard format {format!r}: use one of "
            f"{sorted(RECORD_FORMATS)}."
        )
    if not shard_size_mb > 0:
        raise ValueError(f"shard_size_mb must be > 0, not {shard_size_mb}.")
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    source = os.path.abspath(os.fspath(source))
    output = os.path.abspath(os.fspath(output))
    entries, skipped = list_source(source)
    if not entries:
        raise ValueError(
            f"No audio files in {source} (looked for "
            f"{', '.join(audio_io.AUDIO_EXTENSIONS)} in class folders)."
            if os.path.isdir(source) else f"The manifest {source} is empty."
        )
    fingerprint = source_fingerprint(entries)
    existing = _prepare_output(output, resume, fingerprint, format)
    if existing is not None:
        return existing

    labels = sorted({label for entry in entries for label in entry.labels})
    label_ids = {label: i for i, label in enumerate(labels)}
    multi_label = any(len(entry.labels) != 1 for entry in entries)
    order = list(entries)
    if seed is not None:
        permutation = np.random.default_rng(seed).permutation(len(order))
        order = [order[i] for i in permutation]

    target = max(1, int(shard_size_mb * MEGABYTE))
    shards, counts, max_num_samples = [], collections.Counter(), 0
    writer = None
    try:
        with _decoded(order, num_workers, SAMPLING_RATE) as results, \
                _progress_bar(len(order), progress) as bar:
            for entry, (audio, reason) in results:
                if bar is not None:
                    bar.update(1)
                if reason is not None:
                    skipped.append({"path": entry.name, "reason": reason})
                    continue
                if (writer is not None
                        and writer.num_bytes + audio.nbytes > target):
                    shards.append(writer.finish())
                    writer = None
                if writer is None:
                    writer = _ShardWriter(output, len(shards), format)
                writer.write(audio,
                             sorted(label_ids[x] for x in entry.labels),
                             entry.name, entry.labels)
                counts.update(entry.labels)
                max_num_samples = max(max_num_samples, audio.shape[0])
            if writer is not None:
                shards.append(writer.finish())
                writer = None
    finally:
        if writer is not None:
            writer.abort()

    skipped.sort(key=lambda item: item["path"])
    num_examples = sum(shard["num_examples"] for shard in shards)
    if num_examples == 0:
        reasons = "; ".join(f"{s['path']}: {s['reason']}"
                            for s in skipped[:5])
        raise ValueError(
            f"None of the {len(entries)} files of {source} decodes "
            f"({reasons}{'; ...' if len(skipped) > 5 else ''})."
        )
    info = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "record_format": format,
        "sampling_rate": SAMPLING_RATE,
        "multi_label": multi_label,
        "labels": labels,
        "num_examples": num_examples,
        "max_num_samples": int(max_num_samples),
        "shards": shards,
        "class_counts": {label: counts[label] for label in labels},
        "skipped": skipped,
        "source": source,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "source_fingerprint": fingerprint,
        "seed": seed,
    }
    _write_json_atomic(os.path.join(output, INFO_FILE), info)
    return info


# --- Reading the index ----------------------------------------------------


def read_info(path, verify=False):
    """The `dataset.json` of a shard directory, checked.

    Args:
        path: the shard directory (or its `dataset.json`).
        verify: also check each shard's sha256 (reads every shard).

    Raises:
        FileNotFoundError: no `dataset.json` (not a shard directory, or
            `make_shards` did not finish), or a listed shard is missing.
        ValueError: a `dataset.json` that is not valid, or a shard whose
            sha256 differs.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".json"):
        info_path, directory = path, os.path.dirname(path)
    else:
        info_path, directory = os.path.join(path, INFO_FILE), path
    if not os.path.isfile(info_path):
        shards, _ = _leftovers(directory)
        if shards:
            raise FileNotFoundError(
                f"{directory} has shard files but no {INFO_FILE}: "
                "make-shards did not finish. Run it again with --resume "
                "(resume=True) to start over."
            )
        raise FileNotFoundError(
            f"{directory} is not a shard directory: it has no {INFO_FILE} "
            "(make one with `keras-ast make-shards`)."
        )
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{info_path} is not valid JSON: {error}") from None

    def invalid(reason):
        return ValueError(f"{info_path} is not a valid shard index: {reason}")

    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise invalid(f'"format" is not "{FORMAT_NAME}"')
    if info.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{info_path} is version {info.get('version')} of the shard "
            f"format; this keras_ast reads version {FORMAT_VERSION}."
        )
    missing = [key for key in REQUIRED_KEYS if key not in info]
    if missing:
        raise invalid(f"it lacks {', '.join(missing)}")
    if info["record_format"] not in RECORD_FORMATS:
        raise invalid(f"unknown record_format {info['record_format']!r}")
    if not isinstance(info["labels"], list) or not all(
        isinstance(label, str) for label in info["labels"]
    ):
        raise invalid('"labels" is not a list of strings')
    shards = info["shards"]
    if not isinstance(shards, list) or not all(
        isinstance(shard, dict) and "file" in shard
        and "num_examples" in shard for shard in shards
    ):
        raise invalid('"shards" is not a list of {"file", "num_examples"}')
    total = sum(shard["num_examples"] for shard in shards)
    if total != info["num_examples"]:
        raise invalid(
            f"the shards hold {total} examples, num_examples says "
            f"{info['num_examples']}"
        )
    for shard in shards:
        file = os.path.join(directory, shard["file"])
        if not os.path.isfile(file):
            raise FileNotFoundError(
                f"{directory} is incomplete: {shard['file']}, listed in "
                f"{INFO_FILE}, is missing."
            )
        if verify and sha256_file(file) != shard.get("sha256"):
            raise ValueError(
                f"{file} is damaged: its sha256 differs from {INFO_FILE}'s."
            )
    return info
