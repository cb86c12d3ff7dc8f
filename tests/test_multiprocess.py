"""`train` in two JAX processes (CPU, loopback) against one process.

Why the losses can match: the data set holds exactly one global batch
(4 clips, `batch_size=4`), so every step of either layout computes its
gradient on the same 4 clips (one process reads all 4; two processes read
2 each and all-reduce), whatever the shuffle order. The clips are shorter
than the input, so they are zero-padded, never randomly cropped; mixup,
SpecAugment and dropout are off. Patchout is on: every process draws the
same columns and rows at each step (the same seed), as one process does,
so both layouts train on the same tokens. The only differences left are
the order of float sums, hence a tolerance. Three steps at a high
learning rate make the later losses depend on the all-reduced gradients,
not only on the forward pass.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import soundfile

from conftest import tiny_backbone
from keras_ast.data.shards import make_shards
from keras_ast.training.train import train

pytestmark = [
    pytest.mark.large,
    pytest.mark.skipif(keras.config.backend() != "jax",
                       reason="training in several processes is JAX's"),
]

SETTINGS = dict(epochs=3, batch_size=4, learning_rate=3e-2,
                warmup_fraction=0.0, mixup=False, spec_augment=False,
                seed=0, verbose=0, patchout_time=1, patchout_frequency=2)

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    from keras_ast.training.train import train
    # The caller's setting, as `train` documents (and `keras-ast train`
    # does): CPU processes exchange gradients through gloo.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    preset, shards, output, port, index, settings = sys.argv[1:]
    train(preset, shards, output, coordinator=f"127.0.0.1:{port}",
          num_processes=2, process_id=int(index), **json.loads(settings))
    """
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    rng = np.random.default_rng(0)
    for label, freq in (("high", 3000.0), ("low", 300.0)):
        (root / "source" / label).mkdir(parents=True)
        for i in range(2):
            t = np.arange(4000) / 16000  # 0.25 s: padded, never cropped
            wave = 0.4 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))
            soundfile.write(root / "source" / label / f"{i}.wav",
                            wave.astype(np.float32), 16000, subtype="FLOAT")
    shards = str(root / "shards")
    make_shards(str(root / "source"), shards, format="tfrecord",
                num_workers=1, progress=False)
    preset = str(root / "backbone")
    tiny_backbone().save_to_preset(preset)
    return root, shards, preset


def test_two_processes_match_one(tiny_run):
    root, shards, preset = tiny_run
    output = str(root / "two")
    port = free_port()
    env = dict(os.environ, KERAS_BACKEND="jax", CUDA_VISIBLE_DEVICES="",
               JAX_PLATFORMS="cpu", XLA_FLAGS="")
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER, preset, shards, output, str(port),
         str(index), json.dumps(SETTINGS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in range(2)]
    try:
        results = [w.communicate(timeout=240) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, (_, err) in zip(workers, results):
        assert w.returncode == 0, err[-3000:]
    two = json.load(open(os.path.join(output, "metrics.json")))
    # Written once, by process 0 (the backups are gone once finished).
    assert sorted(os.listdir(output)) == [
        "checkpoints", "metrics.json", "preset"]

    one = train(preset, shards, str(root / "one"), **SETTINGS)
    one = json.load(open(os.path.join(root / "one", "metrics.json")))
    assert [m["epoch"] for m in two] == [1, 2, 3]
    losses_one = [m["loss"] for m in one]
    losses_two = [m["loss"] for m in two]
    # The steps change the model: a wrong gradient would show later.
    assert abs(losses_one[2] - losses_one[0]) > 1e-3
    np.testing.assert_allclose(losses_two, losses_one, rtol=2e-4, atol=1e-5)


def test_several_processes_need_jax_and_a_coordinator(tiny_run, tmp_path):
    root, shards, preset = tiny_run
    with pytest.raises(ValueError, match="coordinator"):
        train(preset, shards, str(tmp_path / "x"), num_processes=2,
              **SETTINGS)
    with pytest.raises(ValueError, match="process_id=2"):
        train(preset, shards, str(tmp_path / "x"), num_processes=2,
              process_id=2, coordinator="127.0.0.1:1", **SETTINGS)
    assert not (tmp_path / "x").exists()
