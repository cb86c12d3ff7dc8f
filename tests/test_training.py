"""`keras-ast train`: fine-tuning from shards, metrics, resume, devices."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from test_pipelines import write_tone_source

from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast import cli
from keras_ast.data.shards import make_shards
from keras_ast.training import train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    write_tone_source(root / "source")
    shards = {}
    for fmt in ("tfrecord", "arrayrecord"):
        shards[fmt] = str(root / fmt)
        make_shards(str(root / "source"), shards[fmt], format=fmt,
                    num_workers=1, progress=False)
    # A random-weight backbone preset: training from scratch must work.
    preset = str(root / "backbone")
    ASTBackbone(hidden_dim=32, num_layers=1, num_heads=4,
                intermediate_dim=64, max_length=64, frequency_stride=16,
                time_stride=16).save_to_preset(preset)
    return root, shards, preset


class StopAfter(keras.callbacks.Callback):
    """Simulates an interruption once `epochs` epochs have finished."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt("simulated interruption")


class CountEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_train_resume_and_preset(setup, tmp_path):
    root, shards, preset = setup
    output = str(tmp_path / "run")
    args = dict(validation=shards["tfrecord"], epochs=3, batch_size=4,
                learning_rate=1e-3)
    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], output, callbacks=[StopAfter(2)],
              **args)
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert [m["epoch"] for m in metrics] == [1, 2]
    counter = CountEpochs()
    classifier = train(preset, shards["tfrecord"], output,
                       callbacks=[counter], **args)
    assert counter.epochs == [2]  # resumed after the second epoch
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all("val_accuracy" in m and "loss" in m for m in metrics)
    assert sorted(os.listdir(os.path.join(output, "checkpoints"))) == [
        "epoch_001.weights.h5", "epoch_002.weights.h5",
        "epoch_003.weights.h5"]
    # The final preset is a normal preset, labelled from the shards.
    restored = ASTClassifier.from_preset(os.path.join(output, "preset"))
    assert restored.labels == ["high", "low"]
    assert restored.multi_label is False
    waves = np.zeros((2, 16000), np.float32)
    np.testing.assert_allclose(restored.predict(waves, verbose=0),
                               classifier.predict(waves, verbose=0),
                               atol=1e-5)


def test_train_cli_with_grain_shards(setup, tmp_path, capsys):
    root, shards, preset = setup
    output = str(tmp_path / "cli_run")
    status = cli.main([
        "train", "--preset", preset, "--train", shards["arrayrecord"],
        "--validation", shards["arrayrecord"], "--output", output,
        "--epochs", "1", "--batch-size", "4", "--max-length", "48",
        "--no-mixup",
    ])
    assert status == 0
    assert "final model" in capsys.readouterr().out
    restored = ASTClassifier.from_preset(os.path.join(output, "preset"))
    assert restored.backbone.max_length == 48
    assert restored.preprocessor.max_length == 48
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert "val_accuracy" in metrics[0]


def test_train_cli_errors(setup, tmp_path, capsys):
    root, shards, preset = setup
    status = cli.main(["train", "--preset", str(tmp_path / "missing"),
                       "--train", shards["tfrecord"], "--output",
                       str(tmp_path / "out")])
    assert status == 1
    assert "Unknown preset" in capsys.readouterr().err


DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    import keras
    from keras_ast.training import train
    assert len(keras.distribution.list_devices()) == 2
    train(sys.argv[1], sys.argv[2], sys.argv[3], epochs=1, batch_size=4,
          verbose=0)
    print(json.dumps({"distribution": type(
        keras.distribution.distribution()).__name__}))
    """
)


@pytest.mark.skipif(keras.config.backend() != "jax",
                    reason="DataParallel over virtual CPU devices is JAX's")
def test_data_parallel_on_two_devices(setup, tmp_path):
    root, shards, preset = setup
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL, preset, shards["tfrecord"],
         str(tmp_path / "dp")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["distribution"] == "DataParallel"
    assert os.path.exists(tmp_path / "dp" / "preset" / "model.weights.h5")
