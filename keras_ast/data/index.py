"""The shard index: reading, checking and writing `dataset.json`.

A shard directory holds shard files and `dataset.json`, written last: its
presence marks a finished directory (see `FORMAT.md`). `read_info` is what
every reader (the pipelines, `keras-ast train`) opens first.
"""

import os
import re

from keras_ast.files import TEMP_PREFIX
from keras_ast.files import read_json
from keras_ast.files import sha256_file
from keras_ast.files import write_json

FORMAT_NAME = "keras_ast.shards"
FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
# record format -> shard file extension.
RECORD_FORMATS = {"tfrecord": ".tfrecord", "arrayrecord": ".array_record"}
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


def read_info(path, verify=False):
    """The `dataset.json` of a shard directory, checked.

    An index written by an older keras_ast is returned with today's keys
    (`version` becomes `format_version`).

    Args:
        path: the shard directory (or its `dataset.json`).
        verify: also check each shard's sha256 (reads every shard).

    Returns:
        The index, a dict (see `FORMAT.md`).

    Raises:
        FileNotFoundError: no `dataset.json` (not a shard directory, or
            `make_shards` did not finish), or a listed shard is missing.
        ValueError: a `dataset.json` that is not valid, or a shard whose
            sha256 differs.

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
    if not os.path.isfile(info_path):
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
