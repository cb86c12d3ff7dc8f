"""A count of skipped records that Grain's worker processes add to.

Grain decodes in worker processes it spawns; a Python integer there is lost
to the process that trains. `SkipCount` keeps the count in a small file:
each skipped record appends one line (an append of a short line is atomic),
so every process that holds a copy (they are pickled with the pipeline)
adds to the same count, and the training process reads it. Numpy only.
"""

import contextlib
import os
import tempfile
import weakref

import numpy as np


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)


class SkipCount:
    """Records a pipeline skipped, counted across processes.

    `int(count)` (or `count.numpy()`, like tf.data's `tf.Variable`) is the
    number of records skipped so far; `reasons()` says which and why. The
    file lives as long as the `SkipCount` made in this process.

    Examples:
    >>> count = SkipCount()
    >>> count.add("shard-00003.array_record record 17: cannot be read")
    >>> int(count)
    1
    """

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="keras_ast-skipped-",
                                         suffix=".txt")
        os.close(fd)
        self._finalizer = weakref.finalize(self, _remove, self.path)

    def __getstate__(self):
        # A copy (in a worker process) adds to the same file; only the
        # process that made it removes it.
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._finalizer = None

    def add(self, reason):
        """Counts one skipped record, with why (one line)."""
        line = " ".join(str(reason).split()) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:  # the pipeline's owner is gone
            return
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def reasons(self):
        """One line per skipped record: which record and why."""
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def __int__(self):
        return len(self.reasons())

    def numpy(self):
        return np.int64(int(self))

    def __repr__(self):
        return f"SkipCount({int(self)})"
