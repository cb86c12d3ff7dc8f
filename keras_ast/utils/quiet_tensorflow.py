"""Starting TensorFlow quietly: for `keras-ast` and for notebooks.

TensorFlow's C++ libraries write log lines to standard error while they
load (oneDNN, "Could not find cuda drivers", absl's "All log messages
before absl::InitializeLog() ..."), before they read `TF_CPP_MIN_LOG_LEVEL`,
so the variable does not hide them; later lines (`E0000 ... failed call to
cuInit` on a machine without a GPU) it does hide, at level 3.

`quiet_tensorflow()` is the context `keras-ast` runs a command in, and
`import_tensorflow()` (`keras_ast.import_tensorflow`) the call a notebook
starts with. The context imports nothing: TensorFlow starts only where
the command needs it (a TensorFlow backend, TFRecord shards, a SavedModel,
Keras' serialisation). Inside it,

- `TF_CPP_MIN_LOG_LEVEL` is 3 (errors surface as Python exceptions) where
  the user did not set it; a value the user set is kept;
- while `tensorflow` is first imported, standard error (the file
  descriptor) goes to a temporary file; afterwards the file is written back
  to standard error without the C++ log lines below that level, as
  TensorFlow would have filtered them had it read the variable in time.

Both are undone on exit: a library import changes no process-wide setting;
only the command line enters this context, and only a caller of
`import_tensorflow` keeps the level set.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# FATAL only: the cuInit line of a machine without a GPU is an ERROR.
QUIET_LEVEL = "3"
# absl / glog: "I0000 00:00:1796635425.508020    5382 port.cc:153] ...".
LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+\] ")
SEVERITIES = {"I": 0, "W": 1, "E": 2, "F": 3}
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog()"


def log_level():
    """`TF_CPP_MIN_LOG_LEVEL` as a number (0, TensorFlow's default, where
    it is unset or not a number)."""
    try:
        return int(os.environ.get(LEVEL_VARIABLE, "0"))
    except ValueError:
        return 0


def filter_log(text, level):
    """`text` without the C++ log lines of a severity below `level`.

    Severities: I 0, W 1, E 2, F 3, as `TF_CPP_MIN_LOG_LEVEL` counts; at a
    level of 1 or more absl's notice that logging is not initialised goes
    too. Every other line (Python warnings, tracebacks) is kept.

    Examples:
    >>> filter_log("I0000 00:00:1.5   7 port.cc:153] oneDNN\\nhello\\n", 1)
    'hello\\n'
    """
    kept = []
    for line in text.splitlines(keepends=True):
        match = LOG_LINE.match(line)
        if match and SEVERITIES[match.group(1)] < level:
            continue
        if level >= 1 and line.startswith(ABSL_NOTICE):
            continue
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(level):
    """Standard error (file descriptor 2, C++ included) passed through
    `filter_log(text, level)` when the block ends."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = filter_log(capture.read().decode(errors="replace"), level)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Loads a module with its own loader inside `filtered_stderr`, at the
    level in effect."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # TensorFlow sees its own loader, as in an import without this.
        module.__spec__.loader = module.__loader__ = self.loader
        with filtered_stderr(log_level()):
            self.loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, with `_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


@contextlib.contextmanager
def quiet_tensorflow():
    """A context in which TensorFlow, if it starts, starts quietly.

    See the module's docstring. Nothing changes where `tensorflow` is
    already imported.

    Examples:
    >>> with quiet_tensorflow():
    ...     status = args._run(args)
    """
    if "tensorflow" in sys.modules:
        yield
        return
    user_set = LEVEL_VARIABLE in os.environ
    if not user_set:
        os.environ[LEVEL_VARIABLE] = QUIET_LEVEL
    finder = _QuietFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        if not user_set:
            os.environ.pop(LEVEL_VARIABLE, None)


def import_tensorflow():
    """Imports TensorFlow, where installed, without its start-up log lines.

    For notebooks: a notebook's kernel shows a library's C++ log lines
    among the cells' outputs, and Keras' saving imports TensorFlow on any
    backend. Called first, this starts TensorFlow inside
    `quiet_tensorflow()` and sets `TF_CPP_MIN_LOG_LEVEL` to 3 for the rest
    of the process where it is unset (the caller asks for it), so later
    lines such as the cuInit error of a machine without a GPU stay out
    too.

    Returns:
        The `tensorflow` module, or None where it is not installed.

    Examples:
        ```python
        tf = keras_ast.import_tensorflow()  # first, before Keras
        ```
    """
    if importlib.util.find_spec("tensorflow") is None:
        return None
    os.environ.setdefault(LEVEL_VARIABLE, QUIET_LEVEL)
    with quiet_tensorflow():
        import tensorflow
    return tensorflow
