#!/usr/bin/env bash
# Runs the test suite once per Keras backend: JAX, TensorFlow, PyTorch,
# and prints how long each took. Extra arguments go to pytest
# (e.g. `-m "not slow"` skips the learning test).
set -euo pipefail
cd "$(dirname "$0")/.."
python=".venv/bin/python"
[ -x "$python" ] || python="python3"
for backend in ${BACKENDS:-jax tensorflow torch}; do
    echo "=== KERAS_BACKEND=$backend"
    start=$SECONDS
    KERAS_BACKEND=$backend "$python" -m pytest tests -q -p no:cacheprovider "$@"
    elapsed=$((SECONDS - start))
    printf '=== KERAS_BACKEND=%s passed in %dm%02ds\n' "$backend" \
        $((elapsed / 60)) $((elapsed % 60))
done
