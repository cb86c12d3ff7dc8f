"""The shard index: `dataset.json` read into a typed `DatasetInfo`.

A shard directory holds shard files and `dataset.json`, written last: its
presence marks a finished directory (see `FORMAT.md`). `read_info` reads
and checks it into a frozen `DatasetInfo`, once per open: the pipelines,
training and evaluation take that object (or the directory) and never
look the file up again. `DatasetInfo.to_json` gives the file's content
back; `write_info` writes it. With `verify=True`, `read_info` also checks
every shard against the sha256 the index holds (`verify_shards` lists every
bad shard instead of raising).

This is the only module that knows the file's keys.
"""

import collections.abc
import concurrent.futures
import dataclasses
import os
import re
import threading
from typing import Any, Mapping, Optional, Tuple

from keras_ast.utils.files import TEMP_PREFIX
from keras_ast.utils.files import read_json
from keras_ast.utils.files import sha256_file
from keras_ast.utils.files import write_json

FORMAT_NAME = "keras_ast.shards"
FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
# record format -> shard file extension.
RECORD_FORMATS = {"tfrecord": ".tfrecord", "arrayrecord": ".array_record"}
# (real path, size, mtime_ns) -> sha256: a shard is hashed once per process
# while it stays unchanged, however often a data set is opened.
_DIGESTS = {}
_DIGESTS_LOCK = threading.Lock()
SHARD_FILE = re.compile(r"^shard-\d{5,}\.(tfrecord|array_record)$")
REQUIRED_KEYS = ("format", "format_version", "record_format",
                 "sampling_rate", "multi_label", "labels", "num_examples",
                 "max_num_samples", "shards", "class_counts", "skipped")


class FrozenCounts(collections.abc.Mapping):
    """A read-only `{label: count}` mapping (hashable and picklable).

    Compares equal to a dict with the same items.

    Examples:
    >>> counts = FrozenCounts({"dog": 3})
    >>> counts["dog"], dict(counts) == {"dog": 3}
    (3, True)
    """

    __slots__ = ("_items",)

    def __init__(self, items=()):
        object.__setattr__(self, "_items", dict(items))

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __hash__(self):
        return hash(frozenset(self._items.items()))

    def __setattr__(self, name, value):
        raise AttributeError("FrozenCounts is read-only.")

    def __reduce__(self):
        return FrozenCounts, (self._items,)

    def __repr__(self):
        return f"FrozenCounts({self._items!r})"


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One shard of a `DatasetInfo` (an entry of `dataset.json`'s shards).

    Attributes:
        file: the shard's file name, e.g. `shard-00000.tfrecord`.
        num_examples: its records.
        sha256: the hex digest of the finished file (None in an index
            written without it: such a shard fails `verify`).
        class_counts: `{label: clips}` of its records (labels present only).
    """

    file: str
    num_examples: int
    sha256: Optional[str] = None
    class_counts: Mapping[str, int] = dataclasses.field(
        default_factory=FrozenCounts)

    def __post_init__(self):
        object.__setattr__(self, "class_counts",
                           FrozenCounts(self.class_counts))

    def to_json(self):
        """The shard's entry of `dataset.json`, a dict."""
        entry = {"file": self.file, "num_examples": self.num_examples}
        if self.sha256 is not None:
            entry["sha256"] = self.sha256
        entry["class_counts"] = dict(self.class_counts)
        return entry

    @classmethod
    def from_json(cls, entry):
        """A `ShardInfo` from its `dataset.json` entry.

        Raises:
            ValueError: an entry without `file` and `num_examples`.
        """
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                and isinstance(entry.get("num_examples"), int)):
            raise ValueError('a shard is not {"file", "num_examples", ...}')
        return cls(entry["file"], entry["num_examples"], entry.get("sha256"),
                   entry.get("class_counts") or {})


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A source file `make_shards` left out, and why."""

    path: str
    reason: str

    def to_json(self):
        return {"path": self.path, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A shard directory's index (`dataset.json`), read once, immutable.

    `read_info` returns one; `make_shards` returns the one it wrote. Both
    pipelines take one in place of a directory (`tf_dataset(info, ...)`),
    which saves reading the file again. The arguments are also its
    attributes.

    Args:
        record_format: `"tfrecord"` or `"arrayrecord"`.
        sampling_rate: the clips' rate, in Hz.
        multi_label: whether a clip may have no label or several.
        labels: the vocabulary, sorted; a label's id is its index. Empty
            for unlabelled audio (see `labelled`).
        num_examples: the records of all shards.
        max_num_samples: the longest clip, in samples.
        shards: a `ShardInfo` per shard, in order.
        class_counts: `{label: clips}`, for every label (empty for
            unlabelled audio).
        skipped: the source files left out (`SkippedFile`: path, reason).
        source: the source the shards were made from (None if not
            recorded).
        created: when, as an ISO 8601 UTC time.
        source_fingerprint: `sources.source_fingerprint` of the source's
            listing: `make_shards(resume=True)` reuses only a match.
        seed: the seed of the shuffled write order (None: sorted order).
        format_version: the shard format's version.
        directory: the folder the index was read from or written to (not
            part of the file, and left out of comparisons).

    Examples:
        >>> info = DatasetInfo(
        ...     record_format="tfrecord", sampling_rate=16000,
        ...     multi_label=False, labels=["no", "yes"], num_examples=0,
        ...     max_num_samples=16000, shards=(),
        ...     class_counts={"no": 0, "yes": 0}, directory="shards/train")
        >>> info.num_classes, info.labels
        (2, ('no', 'yes'))
        >>> DatasetInfo.from_json(info.to_json()) == info
        True
    """

    record_format: str
    sampling_rate: int
    multi_label: bool
    labels: Tuple[str, ...]
    num_examples: int
    max_num_samples: int
    shards: Tuple[ShardInfo, ...]
    class_counts: Mapping[str, int]
    skipped: Tuple[SkippedFile, ...] = ()
    source: Optional[str] = None
    created: Optional[str] = None
    source_fingerprint: Optional[str] = None
    seed: Optional[int] = None
    format_version: int = FORMAT_VERSION
    directory: Optional[str] = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "labels", tuple(self.labels))
        set_(self, "shards", tuple(self.shards))
        set_(self, "skipped", tuple(self.skipped))
        set_(self, "class_counts", FrozenCounts(self.class_counts))

    @property
    def num_classes(self):
        """`len(labels)`."""
        return len(self.labels)

    @property
    def labelled(self):
        """Whether the clips have labels: False for shards of unlabelled
        audio (`labels == ()`, `class_counts == {}`), whose pipelines
        yield waveform batches alone.

        Examples:
        >>> info = DatasetInfo(
        ...     record_format="arrayrecord", sampling_rate=16000,
        ...     multi_label=False, labels=(), num_examples=0,
        ...     max_num_samples=16000, shards=(), class_counts={})
        >>> info.labelled
        False
        """
        return bool(self.labels)

    def require_labels(self, use):
        """Raises a ValueError if the shards are unlabelled.

        Args:
            use: what needs labels, as the message says it (e.g. "train a
                classifier").

        Raises:
            ValueError: unlabelled shards; the message names the shard
                folder, and says to label the audio or pretrain on it.

        Examples:
        >>> info = DatasetInfo(
        ...     record_format="arrayrecord", sampling_rate=16000,
        ...     multi_label=False, labels=(), num_examples=0,
        ...     max_num_samples=16000, shards=(), class_counts={},
        ...     directory="shards/unlabelled")
        >>> info.require_labels("train a classifier")
        Traceback (most recent call last):
        ...
        ValueError: shards/unlabelled holds unlabelled audio ...
        """
        if not self.labelled:
            raise ValueError(
                f"{self.directory or 'This shard set'} holds unlabelled "
                f"audio (its {INFO_FILE} has no labels): it cannot {use}. "
                "Make the shards from labelled audio (class folders, or a "
                "manifest with a label column), or pretrain on it with "
                "`keras-ast pretrain`.")

    def shard_paths(self):
        """The shards' paths: `directory` joined with each file name."""
        return [os.path.join(self.directory or "", shard.file)
                for shard in self.shards]

    def to_json(self):
        """The content of `dataset.json` (see `FORMAT.md`), a dict.

        Returns:
            A JSON-ready dict; `from_json` reads it back.
        """
        content = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "record_format": self.record_format,
            "sampling_rate": self.sampling_rate,
            "multi_label": self.multi_label,
            "labels": list(self.labels),
            "num_examples": self.num_examples,
            "max_num_samples": self.max_num_samples,
            "shards": [shard.to_json() for shard in self.shards],
            "class_counts": dict(self.class_counts),
            "skipped": [item.to_json() for item in self.skipped],
        }
        for key in ("source", "created", "source_fingerprint"):
            if getattr(self, key) is not None:
                content[key] = getattr(self, key)
        content["seed"] = self.seed
        return content

    @classmethod
    def from_json(cls, content, directory=None):
        """A `DatasetInfo` from the content of a `dataset.json`, checked.

        An index that names its format version `version` is read as if
        the key were `format_version`.

        Args:
            content: the parsed JSON.
            directory: where it was read from (see `directory`).

        Returns:
            A `DatasetInfo`.

        Raises:
            ValueError: content that is not a valid index of this
                keras_ast's format version (the message says what is
                wrong).
        """
        if not isinstance(content, dict) or (
                content.get("format") != FORMAT_NAME):
            raise ValueError(f'"format" is not "{FORMAT_NAME}"')
        # Before `format_version`, the key was `version` (same numbers).
        version = content.get("format_version", content.get("version"))
        if version is None:
            raise ValueError('it has no "format_version"')
        if version != FORMAT_VERSION:
            raise FormatVersionError(version)
        missing = [key for key in REQUIRED_KEYS if key not in content
                   and not (key == "format_version" and version)]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        if content["record_format"] not in RECORD_FORMATS:
            raise ValueError(
                f"unknown record_format {content['record_format']!r}")
        labels = content["labels"]
        if not isinstance(labels, list) or not all(
                isinstance(label, str) for label in labels):
            raise ValueError('"labels" is not a list of strings')
        if not isinstance(content["shards"], list):
            raise ValueError('"shards" is not a list')
        shards = [ShardInfo.from_json(shard) for shard in content["shards"]]
        total = sum(shard.num_examples for shard in shards)
        if total != content["num_examples"]:
            raise ValueError(
                f"the shards hold {total} examples, num_examples says "
                f"{content['num_examples']}")
        counts = content["class_counts"]
        if not isinstance(counts, dict):
            raise ValueError('"class_counts" is not a {label: count} object')
        skipped = content["skipped"]
        if not isinstance(skipped, list) or not all(
                isinstance(item, dict) and "path" in item
                for item in skipped):
            raise ValueError('"skipped" is not a list of {"path", "reason"}')
        return cls(
            record_format=content["record_format"],
            sampling_rate=int(content["sampling_rate"]),
            multi_label=bool(content["multi_label"]),
            labels=labels,
            num_examples=int(content["num_examples"]),
            max_num_samples=int(content["max_num_samples"]),
            shards=shards,
            # Every label has a count, 0 where an older index left it out.
            class_counts={label: int(counts.get(label, 0))
                          for label in labels},
            skipped=[SkippedFile(str(item["path"]),
                                 str(item.get("reason", "")))
                     for item in skipped],
            source=content.get("source"),
            created=content.get("created"),
            source_fingerprint=content.get("source_fingerprint"),
            seed=content.get("seed"),
            format_version=version,
            directory=directory,
        )


class FormatVersionError(ValueError):
    """A `dataset.json` of a shard format version this keras_ast does not
    read."""

    def __init__(self, version):
        self.version = version
        super().__init__(f"format_version {version}")


@dataclasses.dataclass(frozen=True)
class PipelineInfo(DatasetInfo):
    """The `DatasetInfo` of the set an open pipeline reads, with its live
    count of skipped records.

    What `tf_dataset(..., with_info=True)` and `grain_dataset(...,
    with_info=True)` return beside the dataset. `skipped_records` is read
    anew at every access: records that cannot be read or do not decode
    are skipped while the pipeline streams (counted in every pass, and by
    Grain's worker processes too).

    Attributes:
        skip_count: the count itself: a `tf.Variable` (tf.data) or a
            `SkipCount` (Grain; its `reasons()` says which records and
            why). Left out of comparisons.

    Examples:
    >>> dataset, info = tf_dataset("shards/train", 32, with_info=True)
    >>> classifier.fit(dataset)
    >>> info.skipped_records, info.num_examples
    (0, 84843)
    """

    skip_count: Any = dataclasses.field(default=None, compare=False,
                                        repr=False)

    @classmethod
    def of(cls, info, skip_count):
        """`info` (a `DatasetInfo`) with a pipeline's `skip_count`."""
        fields = {field.name: getattr(info, field.name)
                  for field in dataclasses.fields(DatasetInfo)}
        return cls(**fields, skip_count=skip_count)

    @property
    def skipped_records(self):
        """Records the pipeline has skipped so far (an int)."""
        if self.skip_count is None:
            return 0
        return int(self.skip_count.numpy())


def shard_file(index, record_format):
    """The file name of the `index`-th shard, e.g. `shard-00003.tfrecord`."""
    return f"shard-{index:05d}{RECORD_FORMATS[record_format]}"


def leftovers(directory):
    """`(shard files, temporary files)` in `directory`, sorted.

    Without a `dataset.json` they are what an unfinished `make_shards` left.
    Temporary files are `files.atomic_path`'s names of shards and of the
    index (`.tmp-shard-00000.tfrecord-XXXX`, `.tmp-dataset.json-XXXX`).
    """
    if not os.path.isdir(directory):
        return [], []
    names = sorted(os.listdir(directory))
    shards = [name for name in names if SHARD_FILE.match(name)]
    temps = [name for name in names
             if name.startswith((TEMP_PREFIX + "shard-",
                                 TEMP_PREFIX + INFO_FILE))]
    return shards, temps


def write_info(directory, info):
    """Writes a `DatasetInfo` as `directory/dataset.json`, atomically.

    Returns:
        `info` with `directory` set.
    """
    directory = os.fspath(directory)
    write_json(os.path.join(directory, INFO_FILE), info.to_json())
    return dataclasses.replace(info, directory=directory)


def read_info(path, verify=False, check_files=True):
    """The `dataset.json` of a shard directory, checked, as a `DatasetInfo`.

    An index that names its format version `version` (in place of
    `format_version`) reads the same.

    Args:
        path: the shard directory (or its `dataset.json`).
        verify: also check each shard's sha256 (reads every shard once per
            process: `shard_sha256` caches digests).
        check_files: check that every listed shard exists.

    Returns:
        A `DatasetInfo`, its `directory` the shard directory.

    Raises:
        FileNotFoundError: `path` does not exist, no `dataset.json` (not a
            shard directory, or `make_shards` did not finish), or a listed
            shard is missing.
        ValueError: a `dataset.json` that is not valid, or of another
            format version.
        DamagedShardError: (a ValueError) with `verify`, shards whose
            sha256 differs; the message names them and how to rebuild.

    Examples:
        ```python
        info = keras_ast.data.read_info("shards/train")
        info.labels, info.num_examples, info.record_format
        # (('no', 'yes'), 2, 'arrayrecord')
        ```
    """
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".json"):
        info_path, directory = path, os.path.dirname(path)
    else:
        info_path, directory = os.path.join(path, INFO_FILE), path
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist.")
    if not os.path.isfile(info_path):
        if os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is a file, not a shard directory (give the folder "
                f"that holds the shards and their {INFO_FILE})."
            )
        shards, _ = leftovers(directory)
        if shards:
            raise FileNotFoundError(
                f"{directory} has shard files but no {INFO_FILE}: "
                "make-shards did not finish. Run it again with resume "
                "(`keras-ast make-shards --resume` or `make_shards(..., "
                "resume=True)`) to start over."
            )
        raise FileNotFoundError(
            f"{directory} is not a shard directory: it has no {INFO_FILE} "
            "(make one with `keras-ast make-shards`)."
        )
    try:
        content = read_json(info_path)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{info_path} is not valid JSON: {error}") from None
    try:
        info = DatasetInfo.from_json(content, directory)
    except FormatVersionError as error:
        raise ValueError(
            f"{info_path} is format_version {error.version} of the shard "
            f"format; this keras_ast reads version {FORMAT_VERSION}."
        ) from None
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{info_path} is not a valid shard index: {error}") from None
    if check_files:
        for shard in info.shards:
            if not os.path.isfile(os.path.join(directory, shard.file)):
                raise FileNotFoundError(
                    f"{directory} is incomplete: {shard.file}, listed in "
                    f"{INFO_FILE}, is missing. {remedy(info)}"
                )
    if verify:
        bad = shard_problems(info)
        if bad:
            raise DamagedShardError(info, bad)
    return info


class DamagedShardError(ValueError):
    """Shards that differ from their `dataset.json` (missing, or sha256).

    Args:
        info: the shard set's `DatasetInfo`.
        problems: `{shard file name: what is wrong}`.

    Attributes:
        directory: the shard directory.
        problems: `{shard file name: what is wrong}`.
    """

    def __init__(self, info, problems):
        self.directory = info.directory
        self.problems = dict(problems)
        names = sorted(self.problems)
        listed = "; ".join(f"{os.path.join(info.directory, name)}: "
                           f"{self.problems[name]}" for name in names[:5])
        more = f" (and {len(names) - 5} more)" if len(names) > 5 else ""
        super().__init__(
            f"{len(names)} of {len(info.shards)} shards of {info.directory} "
            f"are damaged: {listed}{more}. {remedy(info)}"
        )


def remedy(info, verify=True):
    """What to do about a damaged shard set: rebuild it, or check it.

    Args:
        info: the shard set's `DatasetInfo`.
        verify: also suggest `keras-ast verify-shards` to list every bad
            shard (False where they were just listed: in `verify-shards`).

    Examples:
    >>> remedy(read_info("shards/train"), verify=False)
    'Rebuild the shard set (move shards/train away, then ...).'
    """
    directory = info.directory
    rebuild = (
        f"Rebuild the shard set (move {directory} away, then `keras-ast "
        f"make-shards {info.source or 'SOURCE'} {directory} --format "
        f"{info.record_format}`)"
    )
    if not verify:
        return rebuild + "."
    return (f"{rebuild}, or list every bad shard with `keras-ast "
            f"verify-shards {directory}`.")


def shard_sha256(path):
    """The sha256 of a shard file, hashed once per process while unchanged.

    The digest is cached by (real path, size, modification time): opening
    the same data set again (every epoch, validation, a second pipeline)
    does not read the shards again; a file rewritten since is hashed anew.

    Examples:
    >>> shard_sha256("shards/train/shard-00000.tfrecord")[:8]
    '3f1c9a0e'
    """
    before = os.stat(path)
    key = (os.path.realpath(path), before.st_size, before.st_mtime_ns)
    with _DIGESTS_LOCK:
        digest = _DIGESTS.get(key)
    if digest is None:
        digest = sha256_file(path)
        after = os.stat(path)
        # A file that changed while it was read keeps no cached digest.
        if (after.st_size, after.st_mtime_ns) == key[1:]:
            with _DIGESTS_LOCK:
                _DIGESTS[key] = digest
    return digest


def _shard_problem(directory, shard):
    """What is wrong with one shard of an index, or None."""
    file = os.path.join(directory, shard.file)
    if not os.path.isfile(file):
        return "missing"
    if not shard.sha256:
        return f"{INFO_FILE} holds no sha256 for it"
    if shard_sha256(file) != shard.sha256:
        return (f"its sha256 differs from {INFO_FILE}'s (it changed or was "
                f"cut short since it was written; {os.path.getsize(file)} "
                "bytes now)")
    return None


def shard_problems(info, files=None, threads=None):
    """`{shard file name: problem}` of the shards of `info` that are bad.

    Every listed shard (or those named in `files`) is checked for presence
    and hashed (in parallel threads; `shard_sha256` caches digests).

    Args:
        info: the shard set's `DatasetInfo` (`read_info(directory,
            check_files=False)`).
        files: shard file names to check; defaults to all.
        threads: hashing threads; defaults to the CPUs, at most 8.

    Examples:
    >>> shard_problems(read_info("shards/train", check_files=False))
    {}
    """
    shards = [shard for shard in info.shards
              if files is None or shard.file in files]
    threads = threads or min(8, os.cpu_count() or 1, max(1, len(shards)))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        found = pool.map(lambda shard: _shard_problem(info.directory, shard),
                         shards)
        return {shard.file: problem
                for shard, problem in zip(shards, found) if problem}


def verify_shards(path):
    """Checks every shard of a shard directory against its `dataset.json`.

    Each shard must exist and have the sha256 recorded when it was written
    (a changed, truncated or missing shard fails). Reads every shard once.
    `keras-ast verify-shards DIR` runs it.

    Args:
        path: the shard directory, or its `DatasetInfo`.

    Returns:
        `{shard file name: what is wrong}`, empty when every shard is good.

    Raises:
        FileNotFoundError: as `read_info`, for a missing `dataset.json`.
        ValueError: as `read_info`, for an invalid `dataset.json`.

    Examples:
        ```python
        problems = keras_ast.data.verify_shards("shards/train")
        for shard, problem in problems.items():  # {} when all are good
            print(shard, problem)
        ```
    """
    info = as_info(path, check_files=False)
    return shard_problems(info)


def as_info(path_or_info, check_files=True):
    """`path_or_info` if it is a `DatasetInfo`, else `read_info` of it.

    What every function that takes "a shard directory or its DatasetInfo"
    calls, so that an info already read is not read again.
    """
    if isinstance(path_or_info, DatasetInfo):
        if path_or_info.directory is None:
            raise ValueError("This DatasetInfo has no directory: give the "
                             "shard directory, or read_info(directory).")
        return path_or_info
    return read_info(path_or_info, check_files=check_files)
