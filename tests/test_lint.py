"""Every Python file of the repository passes ruff (pyproject's settings).

The tutorials' percent-format sources are code like the rest and are
linted with it; the notebooks made from them are not.
"""

import os
import shutil
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")
FOLDERS = ("keras_ast", "tests", "tools", "benchmarks", "tutorials", "docs")


def ruff():
    beside = os.path.join(os.path.dirname(sys.executable), "ruff")
    return beside if os.path.exists(beside) else shutil.which("ruff")


def test_ruff_passes():
    assert ruff(), "ruff is missing: pip install -e '.[dev]'"
    folders = [f for f in FOLDERS if os.path.isdir(os.path.join(ROOT, f))]
    result = subprocess.run([ruff(), "check", "--no-cache", *folders],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
