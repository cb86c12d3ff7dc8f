"""Module attributes imported on first use (PEP 562), to keep imports light.

`keras_ast` and `keras_ast.data` name their public classes and functions
without importing them, so that a data worker importing a numpy-only module
loads neither Keras nor a backend.
"""

import importlib


def lazy_attributes(package, exports, subpackages=()):
    """`(__getattr__, __dir__)` for a package's `__init__`.

    Args:
        package: the package's `__name__`.
        exports: public name -> module that defines it.
        subpackages: subpackage names reachable as attributes.

    Examples:
    >>> __getattr__, __dir__ = lazy_attributes(
    ...     __name__, {"mixup": "keras_ast.data.mixing"})
    """
    module = importlib.import_module(package)

    def __getattr__(name):
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(module, name, value)  # later lookups skip this function
            return value
        raise AttributeError(
            f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(module)) | set(exports) | set(subpackages))

    return __getattr__, __dir__
