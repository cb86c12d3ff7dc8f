#!/usr/bin/env bash
# Runs the test suite once per Keras backend: JAX, TensorFlow, PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
python=".venv/bin/python"
[ -x "$python" ] || python="python3"
for backend in ${BACKENDS:-jax tensorflow torch}; do
    echo "=== KERAS_BACKEND=$backend"
    KERAS_BACKEND=$backend "$python" -m pytest tests -q -p no:cacheprovider "$@"
done
