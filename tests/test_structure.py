"""The package's shape: no import cycles, one stated job per module."""

import ast
import os
import pathlib

import keras_ast

PACKAGE = pathlib.Path(keras_ast.__file__).parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path, known):
    """keras_ast modules that `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from keras_ast.data import pipelines` imports the submodule
            # where there is one, else the package itself.
            names = [f"{node.module}.{alias.name}"
                     if f"{node.module}.{alias.name}" in known
                     else node.module for alias in node.names]
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


def test_find_cycle_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        "a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(path, known) - {name}
             for name, path in known.items()}
    # A package's __init__ runs before its modules: a module importing its
    # own package is no cycle unless the __init__ imports it back.
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_every_module_states_its_job():
    for name, path in modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), f"{name} has no opening docstring"


def test_readme_layout_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    missing = [path.name for path in PACKAGE.rglob("*.py")
               if path.name != "__init__.py" and path.name not in layout]
    assert not missing, f"README's layout lacks {missing}"
    for name in os.listdir(PACKAGE.parent / "tools"):
        if name.endswith((".py", ".sh")):
            assert name in layout, f"README's layout lacks tools/{name}"
