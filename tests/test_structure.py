"""The package's shape: its floors, and the rules its code keeps.

Each rule is a checker over source text, so that each is also tried on a
small example that breaks it: a rule that cannot fail checks nothing.
"""

import ast
import json
import pathlib
import re

import pytest

import keras_ast

PACKAGE = pathlib.Path(keras_ast.__file__).parent
ROOT = PACKAGE.parent

# The floors, ground first: a module imports only from its own floor and
# the ones before it. `export` sits below `models` because
# `ASTClassifier.export` calls it (it takes the model as an argument);
# `plot` draws what models and inference give and is drawn by evaluation.
FLOORS = ("version", "utils", "ops", "data", "datasets", "presets",
          "inference", "export", "models", "plot", "training", "porting",
          "cli", "")  # "": the package's __init__, the public API
BACKENDS = ("jax", "jaxlib", "tensorflow", "torch")
# What the README and the tutorials may import from.
PUBLIC_MODULES = ("keras_ast", "keras_ast.data", "keras_ast.datasets",
                  "keras_ast.plot")
# Process-wide state that library code must leave to the user.
PROCESS_WIDE_CALLS = ("config.update", "FLAGS.mark_as_parsed",
                      "environ.update", "environ.setdefault", "environ.pop",
                      "putenv", "set_start_method")
# utils/quiet_tensorflow's job is to set TensorFlow's log level while the
# command line runs (and undo it); the user calls `import_tensorflow`. A
# command (cli/) owns its process: it may set what the process needs.
PROCESS_WIDE_ALLOWED = ("keras_ast.utils.quiet_tensorflow",)
# Private names of other libraries that are documented API all the same:
# `sys._getframe` (CPython's documented frame access, for warnings that
# point at the caller's line).
PRIVATE_ALLOWED = ("_getframe",)


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def floor(name):
    """`keras_ast.models.encoder` -> `models`; the package -> `""`."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(tree, known):
    """keras_ast modules a module imports, at any depth of its code.

    Module names written whole as strings count too (`importlib` tables of
    lazily imported names and commands).
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from keras_ast.data import pipelines` imports the submodule
            # where there is one, else the package itself.
            names = [f"{node.module}.{alias.name}"
                     if f"{node.module}.{alias.name}" in known
                     else node.module for alias in node.names]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and node.value in known and "." in node.value):
            # Not the bare package name: `package="keras_ast"` names a
            # Keras serialisation package.
            names = [node.value]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def upward_imports(name, tree, known):
    """The imports of module `name` that reach a later floor."""
    here = FLOORS.index(floor(name))
    return sorted(target for target in imports(tree, known)
                  if FLOORS.index(floor(target)) > here)


def dotted(node):
    """`a.b.c` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def imported_modules(tree):
    """Local names bound to imported modules: `{"tf": "tensorflow"}`."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                bound[alias.asname or alias.name] = (
                    f"{node.module}.{alias.name}")
    return bound


def backend_code(tree):
    """Backend checks and backend imports, as `line: what`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call)
              and dotted(node.func) in ("keras.config.backend",
                                        "keras.backend.backend")):
            found.append(f"{node.lineno}: {dotted(node.func)}()")
            continue
        else:
            continue
        found += [f"{node.lineno}: import {name}" for name in names
                  if name.split(".")[0] in BACKENDS]
    return found


def private_api(tree, own_names):
    """`keras.src` imports and other libraries' private attributes."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([alias.name for alias in node.names]
                     if isinstance(node, ast.Import) else [node.module or ""])
            found += [f"{node.lineno}: import {name}" for name in names
                      if name == "keras.src" or name.startswith("keras.src.")]
        elif isinstance(node, ast.Attribute):
            name = node.attr
            if dotted(node) and dotted(node).startswith("keras.src"):
                found.append(f"{node.lineno}: {dotted(node)}")
            elif (name.startswith("_") and not name.startswith("__")
                  and name not in own_names and name not in PRIVATE_ALLOWED):
                found.append(f"{node.lineno}: .{name}")
    return found


def defined_names(trees):
    """Every name keras_ast defines: functions, classes, attributes set."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                 ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(
                    node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx,
                                                           ast.Store):
                names.add(node.id)
            elif (isinstance(node, ast.Call) and len(node.args) > 1
                  and (dotted(node.func) or "").endswith("setattr__")
                  and isinstance(node.args[1], ast.Constant)):
                names.add(node.args[1].value)  # object.__setattr__(x, "_a")
            elif isinstance(node, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == "__slots__"
                    for target in node.targets):
                names.update(item.value for item in ast.walk(node.value)
                             if isinstance(item, ast.Constant))
    return names


def process_wide_changes(tree):
    """Assignments to other modules' attributes and process-wide calls."""
    bound = imported_modules(tree)
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target])
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, ast.Subscript):
                target = target.value
            chain = dotted(target) if isinstance(target, ast.Attribute) \
                else None
            root = chain.split(".")[0] if chain else None
            if root in bound and not bound[root].startswith("keras_ast"):
                found.append(f"{node.lineno}: {chain} set")
        if isinstance(node, ast.Call):
            name = dotted(node.func) or ""
            root = name.split(".")[0]
            if (name.endswith(PROCESS_WIDE_CALLS) and root in bound
                    and not bound[root].startswith("keras_ast")):
                found.append(f"{node.lineno}: {name}()")
            if (name == "setattr" and node.args
                    and isinstance(node.args[0], ast.Name)
                    and node.args[0].id in bound
                    and not bound[node.args[0].id].startswith("keras_ast")):
                found.append(f"{node.lineno}: setattr({node.args[0].id})")
    return found


def command_line_code(tree):
    """What belongs to the command line: printing, argv, exits."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in ("print", "input", "exit", "quit", "sys.exit"):
                found.append(f"{node.lineno}: {name}()")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([alias.name for alias in node.names]
                     if isinstance(node, ast.Import) else [node.module])
            if "argparse" in names:
                found.append(f"{node.lineno}: import argparse")
        elif isinstance(node, ast.Attribute) and dotted(node) == "sys.argv":
            found.append(f"{node.lineno}: sys.argv")
    return found


def non_public_imports(tree):
    """keras_ast imports in user-facing code that miss the public API."""
    import importlib

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
                node.module or "").startswith("keras_ast"):
            if node.module not in PUBLIC_MODULES:
                found.append(f"from {node.module} import ...")
                continue
            public = importlib.import_module(node.module)
            exported = getattr(public, "__all__", None) or dir(public)
            found += [f"{node.module}.{alias.name}" for alias in node.names
                      if alias.name not in exported]
        elif isinstance(node, ast.Import):
            found += [f"import {alias.name}" for alias in node.names
                      if alias.name.startswith("keras_ast")
                      and alias.name not in PUBLIC_MODULES]
        elif isinstance(node, ast.Attribute):
            chain = dotted(node) or ""
            if chain.startswith("keras_ast."):
                head = chain.split(".")[1]
                if (head not in keras_ast.__all__
                        and f"keras_ast.{head}" not in PUBLIC_MODULES):
                    found.append(chain)
    return sorted(set(found))


def parsed():
    return {name: ast.parse(path.read_text(), str(path))
            for name, path in modules().items()}


# --- the rules, on this package --------------------------------------------


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(tree, known) - {name}
             for name, tree in parsed().items()}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_every_module_sits_on_a_floor():
    stray = [name for name in modules() if floor(name) not in FLOORS]
    assert not stray, f"modules outside the floors {FLOORS}: {stray}"


def test_imports_run_down_the_floors():
    known = modules()
    upward = {name: found for name, tree in parsed().items()
              if (found := upward_imports(name, tree, known))}
    assert not upward, f"imports of a later floor: {upward}"


def test_models_hold_no_backend_code():
    found = {name: hits for name, tree in parsed().items()
             if floor(name) == "models" and (hits := backend_code(tree))}
    assert not found, (
        f"backend code in models/ (it belongs in an ops/ table): {found}")


def test_no_private_api_of_other_libraries():
    trees = parsed()
    own = defined_names(trees.values())
    found = {name: hits for name, tree in trees.items()
             if (hits := private_api(tree, own))}
    assert not found, f"private API of another library: {found}"


def test_no_process_wide_changes():
    found = {name: hits for name, tree in parsed().items()
             if name not in PROCESS_WIDE_ALLOWED and floor(name) != "cli"
             and (hits := process_wide_changes(tree))}
    assert not found, f"process-wide state changed: {found}"


def test_only_the_command_line_prints_or_exits():
    found = {name: hits for name, tree in parsed().items()
             if floor(name) != "cli" and (hits := command_line_code(tree))}
    assert not found, f"command-line code in library modules: {found}"


def test_every_module_states_its_job():
    for name, path in modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), f"{name} has no opening docstring"


def user_facing_sources():
    """`(where, source)` of the Python blocks of the README and the guide
    pages of docs/, the quick start and every notebook's code cells."""
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    for page in pages:
        for index, block in enumerate(
                re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            yield f"{page.relative_to(ROOT)} block {index}", block
    yield "tutorials/quickstart.py", (ROOT / "tutorials/quickstart.py"
                                      ).read_text()
    for path in sorted((ROOT / "tutorials").glob("*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            # Shell and magic lines are no Python: `pass` keeps the blocks.
            lines = [re.sub(r"^(\s*)[!%].*", r"\1pass", line)
                     for line in "".join(cell["source"]).splitlines()]
            yield f"{path.name} cell {index}", "\n".join(lines)


def test_docs_use_only_the_public_api():
    found = {}
    for where, source in user_facing_sources():
        hits = non_public_imports(ast.parse(source))
        if hits:
            found[where] = hits
    assert not found, (
        f"README, docs and tutorials must import from {PUBLIC_MODULES} "
        f"only, names those export: {found}")


def test_layout_page_names_every_floor():
    """docs/layout.md, the engineers' page, names every floor and tool."""
    layout = (ROOT / "docs" / "layout.md").read_text()
    folders = [path.parent.name for path in PACKAGE.glob("*/__init__.py")]
    tops = [path.name for path in PACKAGE.glob("*.py")
            if path.name != "__init__.py"]
    missing = [f"{name}/" for name in folders if f"{name}/" not in layout]
    missing += [name for name in tops if name not in layout]
    tools = [path.name for path in (ROOT / "tools").iterdir()
             if path.suffix in (".py", ".sh")]
    missing += [name for name in tools if f"`{name}`" not in layout]
    assert not missing, f"docs/layout.md lacks {missing}"


# --- each rule fails on code that breaks it ---------------------------------


def test_find_cycle_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        "a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_an_upward_import_is_caught():
    known = modules()
    tree = ast.parse("from keras_ast.models.classifier import ASTClassifier")
    assert upward_imports("keras_ast.ops.dense", tree, known) == [
        "keras_ast.models.classifier"]
    lazy = ast.parse('importlib.import_module("keras_ast.cli.main")')
    assert upward_imports("keras_ast.data.shards", lazy, known) == [
        "keras_ast.cli.main"]
    assert upward_imports("keras_ast.cli.main", tree, known) == []


@pytest.mark.parametrize("source", [
    "if keras.config.backend() == 'torch':\n    pass",
    "def f():\n    import torch.nn.functional as F",
    "from jax import numpy as jnp",
])
def test_a_backend_branch_in_a_model_is_caught(source):
    assert backend_code(ast.parse(source))


@pytest.mark.parametrize("source", [
    "from keras.src.backend.jax import trainer",
    "import keras.src.utils",
    "x = keras.src.backend",
    "layers = list(model._flatten_layers())",
])
def test_private_api_is_caught(source):
    assert private_api(ast.parse(source), own_names={"_own"})
    assert not private_api(ast.parse("self._own = 1"), own_names={"_own"})


@pytest.mark.parametrize("source", [
    "from keras.src.backend.jax import trainer\ntrainer.jit = None",
    "import os\nos.environ['X'] = '1'",
    "import jax\njax.config.update('jax_platforms', 'cpu')",
    "from absl import flags\nflags.FLAGS.mark_as_parsed()",
    "import tf2onnx\nsetattr(tf2onnx, 'x', 1)",
])
def test_process_wide_changes_are_caught(source):
    assert process_wide_changes(ast.parse(source))


def test_own_and_local_state_is_not_process_wide():
    source = ("from keras_ast.utils import files\nfiles.X = 1\n"
              "import os\nenv = dict(os.environ)\nenv['X'] = '1'")
    assert not process_wide_changes(ast.parse(source))


@pytest.mark.parametrize("source", [
    "print('done')",
    "import sys\nsys.exit(1)",
    "import argparse",
    "import sys\nargs = sys.argv[1:]",
])
def test_a_print_in_a_library_module_is_caught(source):
    assert command_line_code(ast.parse(source))


@pytest.mark.parametrize("source", [
    "from keras_ast.models.classifier import ASTClassifier",
    "from keras_ast import not_a_public_name",
    "import keras_ast.training.train",
    "keras_ast.inference.timeline.Timeline",
])
def test_a_private_import_in_the_docs_is_caught(source):
    assert non_public_imports(ast.parse(source))


def test_public_imports_in_the_docs_pass():
    source = ("import keras_ast\nfrom keras_ast import ASTClassifier\n"
              "from keras_ast.data import tf_dataset\n"
              "classifier = keras_ast.ASTClassifier")
    assert non_public_imports(ast.parse(source)) == []
