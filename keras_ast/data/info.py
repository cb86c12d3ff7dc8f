"""The shard index: reading, checking and writing `dataset.json`.

A shard directory holds shard files and `dataset.json`, written last: its
presence marks a finished directory (see `FORMAT.md`). `read_info` is what
every reader (the pipelines, `keras-ast train`) opens first; with
`verify=True` it also checks every shard against the sha256 the index holds
(`verify_shards` lists every bad shard instead of raising).
"""

import concurrent.futures
import os
import re
import threading

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
    """Writes `info` as `directory/dataset.json`, atomically."""
    write_json(os.path.join(directory, INFO_FILE), info)


def _migrate(info):
    """An index of an older keras_ast, in today's keys (in place)."""
    # Before `format_version`, the key was `version` (same numbers).
    if "format_version" not in info and "version" in info:
        info["format_version"] = info.pop("version")
    return info


def read_info(path, verify=False, check_files=True):
    """The `dataset.json` of a shard directory, checked.

    An index written by an older keras_ast is returned with today's keys
    (`version` becomes `format_version`).

    Args:
        path: the shard directory (or its `dataset.json`).
        verify: also check each shard's sha256 (reads every shard once per
            process: `shard_sha256` caches digests).
        check_files: check that every listed shard exists.

    Returns:
        The index, a dict (see `FORMAT.md`).

    Raises:
        FileNotFoundError: `path` does not exist, no `dataset.json` (not a
            shard directory, or `make_shards` did not finish), or a listed
            shard is missing.
        ValueError: a `dataset.json` that is not valid.
        DamagedShardError: (a ValueError) with `verify`, shards whose
            sha256 differs; the message names them and how to rebuild.

    Example:
    >>> info = read_info("shards/train")
    >>> info["labels"][:2], info["num_examples"]
    (['backward', 'bed'], 84843)
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
        info = read_json(info_path)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{info_path} is not valid JSON: {error}") from None

    def invalid(reason):
        return ValueError(f"{info_path} is not a valid shard index: {reason}")

    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise invalid(f'"format" is not "{FORMAT_NAME}"')
    info = _migrate(info)
    if "format_version" not in info:
        raise invalid('it has no "format_version"')
    if info["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{info_path} is format_version {info['format_version']} of the "
            f"shard format; this keras_ast reads version {FORMAT_VERSION}."
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
    if check_files:
        for shard in shards:
            if not os.path.isfile(os.path.join(directory, shard["file"])):
                raise FileNotFoundError(
                    f"{directory} is incomplete: {shard['file']}, listed in "
                    f"{INFO_FILE}, is missing. {remedy(directory, info)}"
                )
    if verify:
        bad = shard_problems(directory, info)
        if bad:
            raise DamagedShardError(directory, info, bad)
    return info


class DamagedShardError(ValueError):
    """Shards that differ from their `dataset.json` (missing, or sha256).

    Attributes:
        problems: `{shard file name: what is wrong}`.
    """

    def __init__(self, directory, info, problems):
        self.problems = dict(problems)
        names = sorted(self.problems)
        listed = "; ".join(f"{os.path.join(directory, name)}: "
                           f"{self.problems[name]}" for name in names[:5])
        more = f" (and {len(names) - 5} more)" if len(names) > 5 else ""
        super().__init__(
            f"{len(names)} of {len(info['shards'])} shards of {directory} "
            f"are damaged: {listed}{more}. {remedy(directory, info)}"
        )


def remedy(directory, info, verify=True):
    """What to do about a damaged shard set: rebuild it, or check it.

    Args:
        directory: the shard directory.
        info: its index.
        verify: also suggest `keras-ast verify-shards` to list every bad
            shard (False where they were just listed: in `verify-shards`).
    """
    source = info.get("source", "SOURCE")
    rebuild = (
        f"Rebuild the shard set (move {directory} away, then `keras-ast "
        f"make-shards {source} {directory} --format {info['record_format']}`"
        ")"
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

    Example:
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
    file = os.path.join(directory, shard["file"])
    if not os.path.isfile(file):
        return "missing"
    expected = shard.get("sha256")
    if not expected:
        return f"{INFO_FILE} holds no sha256 for it"
    digest = shard_sha256(file)
    if digest != expected:
        return (f"its sha256 differs from {INFO_FILE}'s (it changed or was "
                f"cut short since it was written; {os.path.getsize(file)} "
                "bytes now)")
    return None


def shard_problems(directory, info, files=None, threads=None):
    """`{shard file name: problem}` of the shards of `info` that are bad.

    Every listed shard (or those named in `files`) is checked for presence
    and hashed (in parallel threads; `shard_sha256` caches digests).

    Args:
        directory: the shard directory.
        info: its index (`read_info(directory, check_files=False)`).
        files: shard file names to check; defaults to all.
        threads: hashing threads; defaults to the CPUs, at most 8.
    """
    shards = [shard for shard in info["shards"]
              if files is None or shard["file"] in files]
    threads = threads or min(8, os.cpu_count() or 1, max(1, len(shards)))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        found = pool.map(lambda shard: _shard_problem(directory, shard),
                         shards)
        return {shard["file"]: problem
                for shard, problem in zip(shards, found) if problem}


def verify_shards(path):
    """Checks every shard of a shard directory against its `dataset.json`.

    Each shard must exist and have the sha256 recorded when it was written
    (a changed, truncated or missing shard fails). Reads every shard once.
    `keras-ast verify-shards DIR` runs it.

    Args:
        path: the shard directory.

    Returns:
        `{shard file name: what is wrong}`, empty when every shard is good.

    Raises:
        FileNotFoundError, ValueError: as `read_info`, for a missing or
            invalid `dataset.json`.

    Example:
    >>> verify_shards("shards/train")
    {}
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) if path.endswith(".json") else path
    info = read_info(path, check_files=False)
    return shard_problems(directory, info)
