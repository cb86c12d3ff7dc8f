"""Atomic file writing and hashing, shared by every writer (no Keras import).

Presets, shards, dataset indexes, training logs and benchmark results are
all written through `atomic_path` (one file) or `atomic_directory` (a
folder): the content goes to a temporary name beside the target and is
renamed into place only once complete, so a reader never takes a
half-written file for a whole one, and a failure leaves nothing behind.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

TEMP_PREFIX = ".tmp-"


def publish(path):
    """Gives a finished temporary file or directory the usual permissions.

    `tempfile` creates them private (0600 / 0700); what is renamed into
    place should be readable like any file this process writes.
    """
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary file name that replaces `path` when the block ends.

    The caller writes the file (with any writer that takes a path); on
    success it is synced, given normal permissions and renamed to `path`;
    on an exception it is removed and `path` is left as it was. `suffix`
    ends the temporary name, for writers that check it (Keras'
    `save_weights` wants `.weights.h5`).

    Examples:
    >>> with atomic_path("shard-00000.tfrecord") as temp:
    ...     write_records(temp)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{os.path.basename(path)}-", suffix=suffix,
        dir=directory,
    )
    os.close(fd)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        publish(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """`open(path, mode)` that appears at `path` whole or not at all.

    Examples:
    >>> with atomic_write("notes.txt") as f:
    ...     f.write("done\\n")
    """
    with atomic_path(path) as temp:
        binary = "b" in mode
        with open(temp, mode, encoding=None if binary else encoding) as f:
            yield f


def write_json(path, data):
    """Writes `data` as indented UTF-8 JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_json(path):
    """Reads a UTF-8 JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a temporary directory that replaces `path` when done.

    Readers never see a half-written directory: it is renamed into place
    only after everything was written, and removed on failure. An existing
    `path` is replaced (the caller decides whether it may be).
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent)
    try:
        yield staging
        publish(staging)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rename(path, os.path.join(old, "previous"))
            os.rename(staging, path)
            shutil.rmtree(old)
        else:
            os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sha256_file(path):
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
