#!/usr/bin/env bash
# Sets up a fresh machine: system audio tools, a virtual environment in
# .venv, PyTorch's CPU build, then keras_ast with everything its tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null && ! (command -v espeak-ng && command -v sox) >/dev/null; then
    # espeak-ng and sox give real speech to tests and tutorials.
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq espeak-ng sox libsndfile1 >/dev/null
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build first: a bare `torch` requirement would pull a CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"
# The notebook kernel of tests/test_tutorials.py: this environment's Python.
python -m ipykernel install --sys-prefix --name python3 >/dev/null
python -c "import keras_ast; print('keras_ast', keras_ast.__version__, 'installed')"
