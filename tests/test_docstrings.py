"""The docstrings of the public API: present, with `Args:`, and their
`>>>` examples pass.

The public names are `keras_ast`'s, `keras_ast.data`'s and
`keras_ast.datasets`' `_EXPORTS` and the functions of `keras_ast.plot`
without a leading underscore. A class's methods count too, except the Keras
ones a user does not call (`call`, `build`, `get_config`, ...). Examples
that need a download or a user's file are fenced blocks, which `doctest`
does not run; the `>>>` ones run here, on the current backend.
"""

import doctest
import importlib
import importlib.util
import inspect
import os

import keras
import numpy as np
import pytest

import keras_ast
import keras_ast.data
import keras_ast.datasets
import keras_ast.plot

# Methods of the Keras API that the reference does not show.
KERAS_INTERNALS = {
    "build",
    "call",
    "compile_from_config",
    "compute_output_shape",
    "compute_output_spec",
    "from_config",
    "get_config",
}


def public_names():
    """`(qualified name, object)` of every public name, as the API
    reference's build hook (docs/hooks.py) defines them."""
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "hooks.py")
    spec = importlib.util.spec_from_file_location("docs_hooks", path)
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    names = []
    for qualified in sorted(hooks.public_names()):
        package, name = qualified.rsplit(".", 1)
        names.append((qualified,
                      getattr(importlib.import_module(package), name)))
    return names


def public_methods(cls):
    """`(name, function)` of the methods a class defines for users."""
    methods = []
    for name, value in vars(cls).items():
        if name.startswith("_") or name in KERAS_INTERNALS:
            continue
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if inspect.isfunction(value):
            methods.append((name, value))
    return methods


def takes_arguments(function):
    """Whether a function (or a class's constructor) has named arguments."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    return any(
        parameter.name not in ("self", "cls")
        and parameter.kind not in (parameter.VAR_KEYWORD,
                                   parameter.VAR_POSITIONAL)
        for parameter in signature.parameters.values()
    )


PUBLIC = public_names()


def test_public_names_have_docstrings_with_args():
    missing = []
    for qualname, value in PUBLIC:
        documented = [(qualname, value)]
        if inspect.isclass(value):
            documented += [(f"{qualname}.{name}", method)
                           for name, method in public_methods(value)]
        for name, function in documented:
            doc = inspect.getdoc(function) if function.__doc__ else None
            if not doc:
                missing.append(f"{name}: no docstring")
            elif takes_arguments(function) and "\nArgs:\n" not in doc:
                missing.append(f"{name}: no Args: section")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize(
    "qualname, value", PUBLIC, ids=[qualname for qualname, _ in PUBLIC]
)
def test_docstring_examples(qualname, value, tmp_path, monkeypatch):
    if qualname.startswith("keras_ast.datasets."):
        from keras_ast.datasets import spoken_keywords

        if not spoken_keywords.available():
            pytest.skip("espeak-ng and sox are not installed")
    # Examples that write files write them in the working directory.
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(value.__module__)
    globs = dict(vars(module))
    globs.update(np=np, keras=keras, keras_ast=keras_ast)
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    tests = finder.find(value, qualname, module=module, globs=globs)
    tests = [test for test in tests if test.examples]
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in tests:
        result = runner.run(test, out=report.append)
        assert result.failed == 0, "".join(report)
