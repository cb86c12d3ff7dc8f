#!/usr/bin/env bash
# Runs the test suite once per Keras backend: JAX, TensorFlow, PyTorch,
# on two cores (pytest-xdist), and prints how long each took and the
# slowest tests. Extra arguments go to pytest.
#
# Tiers (pytest markers, registered in pyproject.toml):
#   large  notebooks, exports run in their runtimes (TensorFlow, ONNX
#          Runtime, LiteRT), other processes (several JAX processes,
#          data workers, a fresh interpreter), Beam, repeated training
#          runs
#   slow   the learning test
# With no -m every test runs: CI runs it so (.ci/run). The edit loop:
#   bash tools/test.sh -m "not large and not slow"
# BACKENDS picks the backends, e.g. BACKENDS=jax bash tools/test.sh;
# JOBS the pytest-xdist workers (JOBS=0: one process, no workers).
set -euo pipefail
cd "$(dirname "$0")/.."
python=".venv/bin/python"
[ -x "$python" ] || python="python3"
for backend in ${BACKENDS:-jax tensorflow torch}; do
    echo "=== KERAS_BACKEND=$backend"
    start=$SECONDS
    KERAS_BACKEND=$backend "$python" -m pytest tests -q -p no:cacheprovider \
        -n "${JOBS:-2}" --durations=15 "$@"
    elapsed=$((SECONDS - start))
    printf '=== KERAS_BACKEND=%s passed in %dm%02ds\n' "$backend" \
        $((elapsed / 60)) $((elapsed % 60))
done
