"""`keras_ast.data`: its public names, and imports light enough for workers.

Grain worker processes, the shard writer's decoding processes and
`tf.numpy_function` run `keras_ast.data` code: importing it must not load
Keras or a backend. Checked in a fresh interpreter, since the test process
has them loaded already.
"""

import json
import subprocess
import sys

HEAVY = ("keras", "tensorflow", "jax", "torch")


def run_python(code):
    """Runs `code` in a fresh interpreter; returns its JSON output."""
    result = subprocess.run([sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_data_modules_load_no_keras_and_no_backend():
    loaded = run_python(f"""
import json, sys
import keras_ast.data
import keras_ast.data.pipelines
import keras_ast.data.shards
import keras_ast.data.info
import keras_ast.data.sources
import keras_ast.data.mixing
import keras_ast.data.records
import keras_ast.data.audio_io
# Resolving the lazy names loads no more (SpecAugment aside).
from keras_ast.data import (DatasetInfo, dataset_for, grain_dataset,
                            make_shards, mixup, read_info, tf_dataset)
print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
""")
    assert loaded == []


def test_public_names_resolve():
    names = run_python("""
import json, sys
import keras_ast.data as data
from keras_ast.data import info as index, mixing, pipelines, shards
from keras_ast.data import spec_augment
same = {
    "tf_dataset": data.tf_dataset is pipelines.tf_dataset,
    "grain_dataset": data.grain_dataset is pipelines.grain_dataset,
    "dataset_for": data.dataset_for is pipelines.dataset_for,
    "DatasetInfo": data.DatasetInfo is index.DatasetInfo,
    "make_shards": data.make_shards is shards.make_shards,
    "read_info": data.read_info is index.read_info,
    "verify_shards": data.verify_shards is index.verify_shards,
    "mixup": data.mixup is mixing.mixup,
    "SpecAugment": data.SpecAugment is spec_augment.SpecAugment,
}
try:
    data.no_such_name
    missing = False
except AttributeError:
    missing = True
print(json.dumps({"same": same, "all": sorted(data.__all__),
                  "missing": missing}))
""")
    assert all(names["same"].values()), names["same"]
    assert names["all"] == sorted(["DatasetInfo", "SpecAugment",
                                   "dataset_for", "grain_dataset",
                                   "make_shards", "mixup", "read_info",
                                   "tf_dataset", "verify_shards"])
    assert names["missing"]
