"""File helpers shared by the preset and shard writers (no Keras import)."""

import hashlib
import os


def publish(path):
    """Gives a finished temporary file or directory the usual permissions.

    `tempfile` creates them private (0600 / 0700); what is renamed into
    place should be readable like any file this process writes.
    """
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, mode & ~umask)


def sha256_file(path):
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
