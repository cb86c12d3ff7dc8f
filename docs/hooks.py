"""MkDocs hooks of the keras_ast site (see mkdocs.yml `hooks:`).

`on_config` fails the build, naming the names, when a public name of
`keras_ast`, `keras_ast.data`, `keras_ast.datasets` or `keras_ast.plot` has
no `::: module.name` entry in an API page (`docs/api/*.md`) pointing at the
module that defines it, or its definition has no docstring. The public
names are read statically, with `ast`: the package is not imported.

`SettingDefaults` is a griffe extension for mkdocstrings (mkdocs.yml:
`extensions: [docs/hooks.py:SettingDefaults]`): `TrainConfig`'s fields
are `_setting(default, help, type)` calls, which the reference would show
as they are; the extension shows the default alone.
"""

import ast
import pathlib
import re

import griffe
from mkdocs.exceptions import PluginError

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Packages whose `_EXPORTS` table (name -> defining module) is public.
EXPORTING_PACKAGES = ("keras_ast", "keras_ast.data", "keras_ast.datasets")
# Modules whose top-level functions without a leading underscore are
# public.
PUBLIC_MODULES = ("keras_ast.plot",)
ENTRY = re.compile(r"^:::\s*([\w.]+)\s*$", re.MULTILINE)


def _module_path(module):
    path = ROOT / pathlib.Path(*module.split("."))
    if path.is_dir():
        return path / "__init__.py"
    return path.with_suffix(".py")


def _parse(module):
    return ast.parse(_module_path(module).read_text(), str(module))


def _exports(package):
    for node in _parse(package).body:
        if (isinstance(node, ast.Assign)
                and any(getattr(target, "id", None) == "_EXPORTS"
                        for target in node.targets)):
            return ast.literal_eval(node.value)
    raise PluginError(f"{package} has no _EXPORTS table")


def public_names():
    """`{qualified name: defining module}` of every public name."""
    names = {}
    for package in EXPORTING_PACKAGES:
        for name, module in _exports(package).items():
            names[f"{package}.{name}"] = module
    for module in PUBLIC_MODULES:
        for node in _parse(module).body:
            if (isinstance(node, ast.FunctionDef)
                    and not node.name.startswith("_")):
                names[f"{module}.{node.name}"] = module
    return names


def _has_docstring(module, name):
    for node in _parse(module).body:
        if (isinstance(node, (ast.FunctionDef, ast.ClassDef))
                and node.name == name):
            return bool(ast.get_docstring(node))
    return False


def documented_entries(docs_dir):
    """The identifiers of the `:::` entries of the API pages."""
    entries = set()
    for page in sorted(pathlib.Path(docs_dir, "api").glob("*.md")):
        entries.update(ENTRY.findall(page.read_text()))
    return entries


def on_config(config):
    entries = documented_entries(config["docs_dir"])
    problems = []
    for qualname, module in sorted(public_names().items()):
        name = qualname.rsplit(".", 1)[1]
        if f"{module}.{name}" not in entries:
            problems.append(
                f"{qualname}: no '::: {module}.{name}' in docs/api/*.md")
        if not _has_docstring(module, name):
            problems.append(f"{qualname}: {module}.{name} has no docstring")
    if problems:
        raise PluginError(
            "The API reference misses public names:\n  "
            + "\n  ".join(problems))
    return config


class SettingDefaults(griffe.Extension):
    """Reads `name: type = _setting(default, ...)` as `= default`."""

    def on_attribute_instance(self, *, attr, **kwargs):
        value = attr.value
        if (isinstance(value, griffe.ExprCall)
                and str(value.function) == "_setting"
                and value.arguments):
            attr.value = value.arguments[0]
