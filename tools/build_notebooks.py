"""Makes the Colab notebooks `tutorials/NN_name.ipynb` from their sources.

Each notebook's source is `tutorials/NN_name.py`, a Jupytext percent-format
script (`# %%` code cells, `# %% [markdown]` text cells; shell lines such
as `!keras-ast ...` are written `# !keras-ast ...`). Edit the source, then:

    python tools/build_notebooks.py                   # write the notebooks
    python tools/build_notebooks.py --check           # exit 1 if one differs
    python tools/build_notebooks.py --execute 03_fine_tune
        # write it and run it (current KERAS_BACKEND), keeping its outputs

A notebook is its source's cells plus two: the "Open in Colab" badge at
the top of the first cell, and after the markdown cell whose metadata has
`colab_install` (the extras, e.g. `colab_install="plot,audio"`; other pip
packages in `colab_pip`) a code cell that installs espeak-ng, sox and
keras_ast from the repository on Colab only. The repository is
`[project.urls] Repository` of pyproject.toml. Writing a notebook whose
code cells are unchanged keeps their outputs; when a code cell changes,
the outputs are dropped (run `--execute` to make them again).
"""

import argparse
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = os.path.join(ROOT, "tutorials")
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3",
                   "language": "python"},
    "language_info": {"name": "python"},
    "colab": {"provenance": []},
}


def names():
    """The notebooks' names: every `tutorials/NN_*.py`, sorted."""
    return sorted(name[:-3] for name in os.listdir(TUTORIALS)
                  if name.endswith(".py") and name[:2].isdigit())


def source_path(name):
    return os.path.join(TUTORIALS, f"{name}.py")


def path_of(name):
    return os.path.join(TUTORIALS, f"{name}.ipynb")


def repository_url():
    """`[project.urls] Repository` of pyproject.toml (no trailing slash)."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        urls = tomllib.load(f)["project"].get("urls", {})
    if "Repository" not in urls:
        raise SystemExit("pyproject.toml has no [project.urls] Repository")
    return urls["Repository"].rstrip("/").removesuffix(".git")


def colab_badge(name):
    """The "Open In Colab" badge of `tutorials/<name>.ipynb` (markdown)."""
    owner_repo = repository_url().split("github.com/", 1)[-1]
    return ("[![Open In Colab](https://colab.research.google.com/assets/"
            "colab-badge.svg)](https://colab.research.google.com/github/"
            f"{owner_repo}/blob/main/tutorials/{name}.ipynb)")


def install_cell(extras, pip=""):
    """Installs espeak-ng, sox and keras_ast on Colab, nothing elsewhere."""
    extra = f" {pip}" if pip else ""
    return "\n".join([
        "import sys",
        "",
        "if \"google.colab\" in sys.modules:  # elsewhere: already "
        "installed (tools/setup.sh)",
        "    !apt-get -qq update && apt-get -qq install -y espeak-ng sox "
        "> /dev/null",
        # Not on PyPI: installed from the repository.
        f"    !pip install -q \"keras-ast[{extras}] @ "
        f"git+{repository_url()}\"{extra}",
    ])


def source_cells(name):
    """The cells of `tutorials/<name>.py`, as Jupytext reads them."""
    import jupytext

    return jupytext.read(source_path(name), fmt="py:percent").cells


def build(name):
    """The notebook `name` (nbformat v4) made from its source, no outputs.

    Raises:
        ValueError: the source has no markdown cell with `colab_install`.
    """
    import nbformat

    notebook = nbformat.v4.new_notebook(metadata=dict(METADATA))
    cells = []
    installed = False
    for index, cell in enumerate(source_cells(name)):
        text = cell.source
        if index == 0:
            text = f"{colab_badge(name)}\n\n{text}"
        if cell.cell_type == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            cells.append(nbformat.v4.new_code_cell(text))
        if "colab_install" in cell.metadata:
            cells.append(nbformat.v4.new_code_cell(install_cell(
                cell.metadata["colab_install"],
                cell.metadata.get("colab_pip", ""))))
            installed = True
    if not installed:
        raise ValueError(f"{source_path(name)}: no markdown cell with "
                         "colab_install metadata")
    for index, cell in enumerate(cells):
        # Stable ids: rebuilding leaves unchanged cells unchanged.
        cell.id = f"cell-{index:02d}"
    notebook.cells = cells
    return notebook


def cells_of(notebook):
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def code_of(notebook):
    return [cell.source for cell in notebook.cells
            if cell.cell_type == "code"]


def write(name):
    """Writes `tutorials/<name>.ipynb` from its source.

    Returns:
        "unchanged", "written", or "outputs dropped" (a code cell with
        outputs changed).
    """
    import nbformat

    notebook = build(name)
    if os.path.exists(path_of(name)):
        old = nbformat.read(path_of(name), as_version=4)
        if cells_of(old) == cells_of(notebook):
            return "unchanged"
        old_code = [c for c in old.cells if c.cell_type == "code"]
        if code_of(old) == code_of(notebook):
            new_code = [c for c in notebook.cells if c.cell_type == "code"]
            for new, kept in zip(new_code, old_code):
                new.outputs = kept.outputs
                new.execution_count = kept.execution_count
        elif any(cell.outputs for cell in old_code):
            nbformat.write(notebook, path_of(name))
            return "outputs dropped"
    nbformat.write(notebook, path_of(name))
    return "written"


def execute(notebook, directory, timeout=1800, env=None):
    """Runs `notebook` in `directory`, in place, with this Python.

    Args:
        notebook: an nbformat notebook; its cells get their outputs.
        directory: the working directory of the kernel.
        timeout: seconds one cell may run.
        env: variables to set for the kernel, over this process's.

    Returns:
        `notebook`.
    """
    from nbclient import NotebookClient

    env = dict(os.environ, **(env or {}))
    # `!keras-ast ...` cells run this environment's command; the kernel
    # ("python3", ipykernel's) is this interpreter: jupyter_client puts
    # sys.executable in place of a kernelspec's "python".
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get(
        "PATH", "")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": directory}}).execute(
                       env=env)
    return notebook


def main(argv=None):
    import tempfile

    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 naming each notebook "
                            "whose cells differ from its source")
    group.add_argument("--execute", metavar="NAME", choices=names(),
                       help="also run this notebook and keep its outputs")
    args = parser.parse_args(argv)
    if args.check:
        stale = [name for name in names()
                 if not os.path.exists(path_of(name))
                 or cells_of(nbformat.read(path_of(name), as_version=4))
                 != cells_of(build(name))]
        for name in stale:
            print(f"{path_of(name)} does not match {source_path(name)}: "
                  "run python tools/build_notebooks.py", file=sys.stderr)
        return 1 if stale else 0
    for name in names():
        if name == args.execute:
            continue
        result = write(name)
        if result == "outputs dropped":
            print(f"warning: {name}'s code changed; its outputs are dropped "
                  f"(rerun with --execute {name})", file=sys.stderr)
        if result != "unchanged":
            print("wrote", path_of(name))
    if args.execute:
        notebook = build(args.execute)
        with tempfile.TemporaryDirectory() as directory:
            execute(notebook, directory)
        for cell in notebook.cells:  # times and hosts are noise in diffs
            cell.metadata.pop("execution", None)
        nbformat.write(notebook, path_of(args.execute))
        print("wrote", path_of(args.execute), "with its outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
