"""The documentation site builds, strictly, and the README stays short.

`mkdocs build --strict` fails on a broken link or anchor, a page left out
of the nav, and a docstring that mkdocstrings cannot render (the API
reference's hook also fails on a public name without one). Cheap and
model-free: it runs on every backend.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
README_MAX_LINES = 200
BENCHMARKS_README_MAX_LINES = 300


def mkdocs():
    """The mkdocs of this interpreter's environment, or None."""
    beside = os.path.join(os.path.dirname(sys.executable), "mkdocs")
    return beside if os.path.exists(beside) else shutil.which("mkdocs")


def test_site_builds_strictly(tmp_path):
    command = mkdocs()
    assert command, "mkdocs is missing: pip install -e '.[dev]' (or [docs])"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [command, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        "mkdocs build --strict failed:\n" + output[-6000:])


@pytest.mark.parametrize("path, limit", [
    ("README.md", README_MAX_LINES),
    ("benchmarks/README.md", BENCHMARKS_README_MAX_LINES)])
def test_readme_is_short(path, limit):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert len(lines) <= limit, (
        f"{path} has {len(lines)} lines, at most {limit}: move the detail "
        "to a page of docs/ or a results file")


def test_benchmarks_readme_leads_with_the_summary():
    with open(os.path.join(ROOT, "benchmarks/README.md"),
              encoding="utf-8") as file:
        headings = [line for line in file if line.startswith("## ")]
    assert headings and headings[0].strip() == "## Summary", headings[:3]
