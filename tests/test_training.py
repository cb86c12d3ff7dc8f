"""`keras-ast train`: fine-tuning from shards, metrics, resume, devices."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
from test_pipelines import write_tone_source

from conftest import tiny_backbone
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.data.shards import make_shards
from keras_ast.training.train import train


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
    tiny_backbone().save_to_preset(preset)
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


@pytest.mark.large  # several runs of train()
def test_train_resume_and_preset(setup, tmp_path):
    root, shards, preset = setup
    output = str(tmp_path / "run")
    args = dict(validation=shards["tfrecord"], epochs=3, batch_size=4,
                learning_rate=1e-3, keep_checkpoints=3)
    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], output, callbacks=[StopAfter(2)],
              **args)
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert [m["epoch"] for m in metrics] == [1, 2]
    counter = CountEpochs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier = train(preset, shards["tfrecord"], output,
                           callbacks=[counter], **args)
    # The finite validation stream ending is no news (see training.py).
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    assert counter.epochs == [2]  # resumed after the second epoch
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all("val_accuracy" in m and "loss" in m for m in metrics)
    assert sorted(os.listdir(os.path.join(output, "checkpoints"))) == [
        "epoch_001.weights.h5", "epoch_002.weights.h5",
        "epoch_003.weights.h5"]
    # The best epoch by val_accuracy (the first of equals) is a preset.
    accuracies = [m["val_accuracy"] for m in metrics]
    best_epoch = accuracies.index(max(accuracies)) + 1
    best = ASTClassifier.from_preset(os.path.join(output, "best_preset"))
    expected = ASTClassifier.from_preset(os.path.join(output, "preset"))
    expected.load_weights(os.path.join(
        output, "checkpoints", f"epoch_{best_epoch:03d}.weights.h5"))
    for a, b in zip(best.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
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
    output = tmp_path / "out"
    status = cli.main(["train", "--preset", str(tmp_path / "missing"),
                       "--train", shards["tfrecord"], "--output",
                       str(output)])
    assert status == 1
    assert "Unknown preset" in capsys.readouterr().err
    # A run that failed before writing anything leaves no folder behind.
    assert not output.exists()


class Interrupt(keras.callbacks.Callback):
    """Ctrl-C in the first epoch."""

    def on_train_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt


@pytest.mark.large  # several runs of train()
def test_train_cli_interrupt_finished_run_and_overwrite(setup, tmp_path,
                                                        capsys, monkeypatch):
    root, shards, preset = setup
    output = str(tmp_path / "run")
    command = ["train", "--preset", preset, "--train", shards["tfrecord"],
               "--output", output, "--epochs", "1", "--batch-size", "4"]
    from keras_ast.training import train as training

    real_train = training.train
    with monkeypatch.context() as patch:
        patch.setattr(training, "train", lambda *a, **k: real_train(
            *a, callbacks=[Interrupt()], **k))
        assert cli.main(command) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Run the same command again" in err
    assert "Traceback" not in err
    assert cli.main(command) == 0
    assert "final model" in capsys.readouterr().out
    first = os.path.getmtime(os.path.join(output, "preset", "config.json"))
    # Rerunning a finished run says so and does not train again.
    assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert "finished run" in out and "--overwrite" in out
    assert os.path.getmtime(
        os.path.join(output, "preset", "config.json")) == first
    # A report of the earlier run must not pass for this one's (this run
    # has no validation set, so writes none).
    stale = os.path.join(output, "evaluation.json")
    with open(stale, "w") as f:
        f.write("{}")
    assert cli.main(command + ["--overwrite", "--epochs", "2"]) == 0
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert not os.path.exists(stale)


def process_state():
    """What library code must not change: the environment, absl's flags,
    JAX's configuration, Keras' policy and distribution."""
    from absl import flags

    state = {"environ": dict(os.environ),
             "absl_parsed": flags.FLAGS.is_parsed(),
             "policy": keras.config.dtype_policy().name,
             "distribution": keras.distribution.distribution()}
    jax = sys.modules.get("jax")
    if jax is not None:
        state["jax"] = {name: getattr(jax.config, name) for name in (
            "jax_cpu_collectives_implementation", "jax_enable_x64",
            "jax_default_matmul_precision")}
    return state


@pytest.mark.parametrize("fmt", ["tfrecord", "arrayrecord"])
def test_train_leaves_global_state_alone(setup, tmp_path, fmt):
    root, shards, preset = setup
    before = process_state()
    classifier = train(preset, shards[fmt], str(tmp_path / "bf16"),
                       validation=shards[fmt], epochs=1, batch_size=4,
                       mixed_precision=True, verbose=0)
    assert classifier.backbone.dtype_policy.name == "mixed_bfloat16"
    assert classifier.head_dense.compute_dtype == "float32"
    # The recipe's SpecAugment was built into the classifier.
    assert classifier.augmenter is not None
    assert process_state() == before
    with pytest.raises(TypeError, match="no_such_setting"):
        train(preset, shards[fmt], str(tmp_path / "x"),
              no_such_setting=1)


DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    import keras
    from keras_ast.training.train import train
    assert len(keras.distribution.list_devices()) == 2

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = type(keras.distribution.distribution()).__name__

    record = Record()
    train(sys.argv[1], sys.argv[2], sys.argv[3], epochs=1, batch_size=4,
          verbose=0, callbacks=[record])
    print(json.dumps({"during": record.seen, "after": type(
        keras.distribution.distribution()).__name__}))
    """
)


@pytest.mark.large  # another process
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
    assert out["during"] == "DataParallel"
    assert out["after"] == "NoneType"  # scoped to the run
    assert os.path.exists(tmp_path / "dp" / "preset" / "model.weights.h5")


class FakeModel:
    def __init__(self):
        self.saved = []

    def save_to_preset(self, path):
        self.saved.append(path)


def test_best_preset_keeps_the_best_over_a_resume():
    from keras_ast.training.runs import BestPreset

    # A run resumed after epoch 2; epoch 3 of the first try was lost.
    history = [{"epoch": 1, "val_accuracy": 0.9},
               {"epoch": 2, "val_accuracy": 0.5},
               {"epoch": 3, "val_accuracy": 0.99}]
    model = FakeModel()
    callback = BestPreset("best", "val_accuracy", history)
    callback.set_model(model)
    callback.on_epoch_begin(2)
    callback.on_epoch_end(2, {"val_accuracy": 0.8})
    assert model.saved == []  # 0.9 (epoch 1) is still the best
    callback.on_epoch_end(3, {"val_accuracy": 0.95})
    assert model.saved == ["best"]
    # Losses fall.
    callback = BestPreset("best", "val_loss", [{"epoch": 1, "val_loss": 1.0}])
    callback.set_model(model)
    callback.on_epoch_begin(1)
    callback.on_epoch_end(1, {"val_loss": 1.5})
    callback.on_epoch_end(2, {"val_loss": 0.5})
    assert model.saved == ["best", "best"]
    with pytest.raises(ValueError, match="val_map.*not logged"):
        callback = BestPreset("best", "val_map")
        callback.set_model(model)
        callback.on_epoch_begin(0)
        callback.on_epoch_end(0, {"val_accuracy": 1.0})


def test_monitor_must_be_logged(setup, tmp_path):
    root, shards, preset = setup
    with pytest.raises(ValueError, match="monitor='val_map'.*val_accuracy"):
        train(preset, shards["tfrecord"], str(tmp_path / "a"),
              validation=shards["tfrecord"], monitor="val_map", epochs=1)
    with pytest.raises(ValueError, match="need validation data"):
        train(preset, shards["tfrecord"], str(tmp_path / "b"),
              monitor="val_accuracy", epochs=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resumed_grain_stream_continues_the_order(setup):
    from keras_ast.data.pipelines import grain_dataset

    def batches(start_example, count):
        stream = iter(grain_dataset(
            setup[1]["arrayrecord"], 4, training=True, clip_seconds=0.5,
            num_epochs=None, seed=3, start_example=start_example))
        return [next(stream) for _ in range(count)]

    # 12 clips, 3 batches a pass: a run resumed after one epoch starts at
    # the uninterrupted run's second pass, crops included.
    whole = batches(0, 6)
    resumed = batches(12, 3)
    for (wave, label), (wave2, label2) in zip(whole[3:], resumed):
        np.testing.assert_array_equal(wave, wave2)
        np.testing.assert_array_equal(label, label2)
    # ... which is a new order, not the first pass again.
    assert not all(np.array_equal(a[1], b[1])
                   for a, b in zip(whole[:3], resumed))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def epochs_in(output):
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    return [m["epoch"] for m in metrics]


@pytest.mark.large  # several runs
def test_damaged_backup_resumes_from_the_last_good_one(setup, tmp_path):
    root, shards, preset = setup
    output = tmp_path / "run"
    backup = output / "backup"
    args = dict(epochs=3, batch_size=4, verbose=0)
    first = tmp_path / "first"

    class CopyFirstBackup(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                shutil.copytree(backup, first)

    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], str(output),
              callbacks=[CopyFirstBackup(), StopAfter(2)], **args)
    # Killed after epoch 2's backup was whole, before epoch 1's was
    # removed: both are there. Then epoch 2's is damaged.
    for path in first.iterdir():
        if not (backup / path.name).exists():
            shutil.copy(path, backup / path.name)
    truncate(max(backup.glob("*.weights.h5")))
    counter = CountEpochs()
    with pytest.warns(UserWarning, match="backup .* is damaged"):
        train(preset, shards["tfrecord"], str(output), callbacks=[counter],
              **args)
    assert counter.epochs == [1, 2]  # after epoch 1, the good one
    assert epochs_in(output) == [1, 2, 3]
    assert not backup.exists()  # finished: the backup is no longer needed
    # Only the last epoch's checkpoint is kept (keep_checkpoints=1).
    assert os.listdir(output / "checkpoints") == ["epoch_003.weights.h5"]

    # The only backup damaged: a fresh start, with a warning.
    output = tmp_path / "run2"
    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], str(output),
              callbacks=[StopAfter(1)], **dict(args, epochs=2))
    [weights] = (output / "backup").glob("*.weights.h5")
    truncate(weights)
    counter = CountEpochs()
    with pytest.warns(UserWarning) as caught:
        train(preset, shards["tfrecord"], str(output), callbacks=[counter],
              **dict(args, epochs=2))
    messages = " ".join(str(w.message) for w in caught)
    assert "damaged" in messages and "afresh, from epoch 1" in messages
    assert counter.epochs == [0, 1]
    assert epochs_in(output) == [1, 2]


class InitialState(keras.callbacks.Callback):
    """The model's and the optimizer's variables as training starts."""

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        self.weights = [keras.ops.convert_to_numpy(v)
                        for v in self.model.weights]
        self.optimizer = [keras.ops.convert_to_numpy(v)
                          for v in optimizer.variables] if (
                              optimizer.built) else []


@pytest.mark.large  # several runs
def test_damaged_backup_of_an_earlier_version(setup, tmp_path):
    """What keras.callbacks.BackupAndRestore left when a save was
    interrupted: `latest.weights.h5` missing variables."""
    import h5py

    root, shards, preset = setup
    output = tmp_path / "run"
    backup = output / "backup"
    args = dict(epochs=2, batch_size=4, verbose=0)
    fresh = InitialState()
    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], str(output),
              callbacks=[fresh, StopAfter(1)], **args)
    # The same backup in the earlier layout: weights and metadata.
    for path in backup.iterdir():
        if path.name.endswith(".weights.h5"):
            path.rename(backup / "latest.weights.h5")
        else:
            path.unlink()
    (backup / "training_metadata.json").write_text(
        json.dumps({"epoch": 1, "batch": 0}))
    # Whole, it resumes ...
    shutil.copytree(output, tmp_path / "whole")
    counter = CountEpochs()
    train(preset, shards["tfrecord"], str(tmp_path / "whole"),
          callbacks=[counter], **args)
    assert counter.epochs == [1]
    # ... damaged, the run starts afresh, from the preset's weights (not
    # from the half of the backup that did load).
    with h5py.File(backup / "latest.weights.h5", "r+") as f:
        groups = []
        f.visit(lambda name: groups.append(name)
                if name.endswith("/vars") else None)
        del f[groups[len(groups) // 2]]
    counter, again = CountEpochs(), InitialState()
    with pytest.warns(UserWarning, match="does not load"):
        train(preset, shards["tfrecord"], str(output),
              callbacks=[counter, again], **args)
    assert counter.epochs == [0, 1]
    for a, b in zip(again.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.optimizer and not any(np.any(v) for v in again.optimizer)


@pytest.mark.large  # several runs of train()
def test_overwrite_starts_afresh_over_a_damaged_backup(setup, tmp_path):
    root, shards, preset = setup
    output = tmp_path / "run"
    args = dict(epochs=2, batch_size=4, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], str(output),
              callbacks=[StopAfter(1)], **args)
    for weights in (output / "backup").glob("*.weights.h5"):
        truncate(weights)
    counter = CountEpochs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(preset, shards["tfrecord"], str(output), callbacks=[counter],
              overwrite=True, **args)
    assert not [w for w in caught if "damaged" in str(w.message)]
    assert counter.epochs == [0, 1]
    assert epochs_in(output) == [1, 2]


@pytest.mark.large  # several runs of train()
def test_keep_checkpoints(setup, tmp_path):
    root, shards, preset = setup
    output = tmp_path / "run"
    train(preset, shards["tfrecord"], str(output), epochs=3, batch_size=4,
          keep_checkpoints=2, verbose=0)
    assert sorted(os.listdir(output / "checkpoints")) == [
        "epoch_002.weights.h5", "epoch_003.weights.h5"]
    # The last checkpoint is the final model.
    final = ASTClassifier.from_preset(str(output / "preset"))
    checkpoint = ASTClassifier.from_preset(str(output / "preset"))
    checkpoint.load_weights(output / "checkpoints" / "epoch_003.weights.h5")
    for a, b in zip(final.get_weights(), checkpoint.get_weights()):
        np.testing.assert_array_equal(a, b)
    train(preset, shards["tfrecord"], str(output), epochs=1, batch_size=4,
          keep_checkpoints=0, overwrite=True, verbose=0)
    assert not (output / "checkpoints").exists()
    with pytest.raises(ValueError, match="keep_checkpoints=-1"):
        train(preset, shards["tfrecord"], str(tmp_path / "x"),
              keep_checkpoints=-1)
    assert not (tmp_path / "x").exists()


# Runs `keras-ast train` and holds its second backup half-written (as a
# large model's save is for seconds) until the test kills it.
SLOW_BACKUP = textwrap.dedent(
    """
    import os, sys, time
    import keras
    from keras_ast.cli import main as cli

    real = keras.Model.save_weights
    backups = []

    def save_weights(self, filepath, *args, **kwargs):
        real(self, filepath, *args, **kwargs)
        if os.sep + "backup" + os.sep in str(filepath):
            backups.append(filepath)
            if len(backups) == 2:
                with open(filepath, "r+b") as f:
                    f.truncate(os.path.getsize(filepath) // 2)
                print("SAVING", flush=True)
                time.sleep(600)

    keras.Model.save_weights = save_weights
    sys.exit(cli.main(sys.argv[1:]))
    """
)


@pytest.mark.large  # another process
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_run_killed_during_its_backup_resumes(setup, tmp_path, capsys,
                                              signal_name):
    import signal

    root, shards, preset = setup
    output = tmp_path / "run"
    command = ["train", "--preset", preset, "--train", shards["arrayrecord"],
               "--output", str(output), "--epochs", "3", "--batch-size",
               "4"]
    with open(tmp_path / "stderr", "w") as stderr:
        # Ctrl-C's default action in the child, whatever the test process
        # inherited: a process started with SIGINT ignored keeps it so.
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_BACKUP, *command],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in process.stdout:
            if "SAVING" in line:
                break
        else:
            pytest.fail("no second backup: "
                        + (tmp_path / "stderr").read_text()[-3000:])
        process.send_signal(getattr(signal, signal_name))
        # Read what it still prints, so a full pipe cannot hold it.
        process.communicate(timeout=300)
        assert process.returncode != 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    counter = CountEpochs()
    from keras_ast.training import train as training

    real_train = training.train
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "train", lambda *a, **k: real_train(
            *a, callbacks=[counter], **k))
        assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert "after epoch 1 of 3" in out and "from epoch 2" in out
    assert counter.epochs == [1, 2]
    assert epochs_in(output) == [1, 2, 3]
    assert sorted(os.listdir(output)) == ["checkpoints", "metrics.json",
                                          "preset"]
    assert os.listdir(output / "checkpoints") == ["epoch_003.weights.h5"]


@pytest.mark.skipif(keras.config.backend() == "jax",
                    reason="JAX trains in several processes")
def test_several_processes_need_jax(setup, tmp_path):
    root, shards, preset = setup
    with pytest.raises(ValueError, match="JAX backend only"):
        train(preset, shards["tfrecord"], str(tmp_path / "x"),
              num_processes=2, coordinator="127.0.0.1:1")


# --- patchout, LoRA and a frozen backbone -----------------------------------


def backbone_weights(classifier):
    """The backbone's weights but LoRA's factors, as NumPy, in order."""
    return [keras.ops.convert_to_numpy(v) for v in classifier.backbone.weights
            if not v.name.startswith("lora_")]


def lora_factors(classifier):
    return {v.path: keras.ops.convert_to_numpy(v)
            for v in classifier.backbone.weights
            if v.name.startswith("lora_")}


def assert_presets_give_its_logits(classifier, output):
    """The final and best presets load as plain presets (no LoRA) and
    give the trained classifier's logits."""
    waves = np.random.default_rng(0).standard_normal((2, 8000)).astype(
        np.float32) * 0.1
    expected = classifier.predict(waves, verbose=0)
    for name in ("preset", "best_preset"):
        restored = ASTClassifier.from_preset(os.path.join(output, name))
        assert not lora_factors(restored)
        np.testing.assert_allclose(restored.predict(waves, verbose=0),
                                   expected, atol=1e-5)


QUICK = dict(epochs=1, batch_size=4, learning_rate=1e-2, spec_augment=False,
             mixup=False, keep_checkpoints=0, verbose=0)


@pytest.mark.large  # a run of train()
def test_train_cli_with_patchout(setup, tmp_path, capsys):
    root, shards, preset = setup
    output = str(tmp_path / "patchout")
    # The tiny grid: 8 frequency rows, 4 time columns.
    status = cli.main([
        "train", "--preset", preset, "--train", shards["tfrecord"],
        "--output", output, "--epochs", "1", "--batch-size", "4",
        "--patchout-time", "1", "--patchout-frequency", "2",
        "--patchout-random", "0.25", "--no-mixup"])
    assert status == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "final model" in out
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert np.isfinite(metrics[0]["loss"])
    restored = ASTClassifier.from_preset(os.path.join(output, "preset"))
    assert (restored.backbone.patchout_time,
            restored.backbone.patchout_frequency) == (1, 2)


@pytest.mark.large  # a run of train()
def test_train_with_lora_changes_only_the_adapters(setup, tmp_path, caplog):
    root, shards, preset = setup
    output = str(tmp_path / "lora")
    before = backbone_weights(ASTClassifier.from_preset(preset,
                                                        num_classes=2))
    with caplog.at_level("INFO", logger="keras_ast.training.train"):
        classifier = train(preset, shards["tfrecord"], output,
                           validation=shards["tfrecord"], lora_rank=2,
                           **QUICK)
    factors = lora_factors(classifier)
    # Query and value of the one encoder layer: A and B each.
    assert len(factors) == 4
    assert all(np.any(value != 0) for value in factors.values())  # B too
    for got, expected in zip(backbone_weights(classifier), before,
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    trainable = sum(int(np.prod(v.shape))
                    for v in classifier.trainable_weights)
    assert f"Training {trainable} of the model's" in caplog.text
    assert_presets_give_its_logits(classifier, output)
    # The saved kernels hold what LoRA learnt.
    merged = backbone_weights(ASTClassifier.from_preset(
        os.path.join(output, "preset")))
    assert any(not np.allclose(a, b) for a, b in zip(merged, before))


@pytest.mark.large  # a run of train()
def test_train_with_a_frozen_backbone(setup, tmp_path):
    root, shards, preset = setup
    output = str(tmp_path / "frozen")
    before = backbone_weights(ASTClassifier.from_preset(preset,
                                                        num_classes=2))
    classifier = train(preset, shards["tfrecord"], output,
                       validation=shards["tfrecord"], freeze_backbone=True,
                       **QUICK)
    head = [classifier.head_norm.gamma, classifier.head_norm.beta,
            classifier.head_dense.kernel, classifier.head_dense.bias]
    assert {v.path for v in classifier.trainable_weights} == {
        v.path for v in head}
    for got, expected in zip(backbone_weights(classifier), before,
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    assert_presets_give_its_logits(classifier, output)


def test_lora_and_a_frozen_backbone_are_refused_together(setup, tmp_path,
                                                        capsys):
    root, shards, preset = setup
    output = tmp_path / "both"
    with pytest.raises(ValueError, match="lora_rank=2 and freeze_backbone"):
        train(preset, shards["tfrecord"], str(output), lora_rank=2,
              freeze_backbone=True)
    with pytest.raises(ValueError, match="lora_mlp=True needs lora_rank"):
        train(preset, shards["tfrecord"], str(output), lora_mlp=True)
    status = cli.main(["train", "--preset", preset, "--train",
                       shards["tfrecord"], "--output", str(output),
                       "--lora-rank", "2", "--freeze-backbone"])
    assert status == 1
    err = capsys.readouterr().err
    assert "--lora-rank or --freeze-backbone" in err
    assert not output.exists()


class RecordFactors(keras.callbacks.Callback):
    """The LoRA factors as a resumed run starts training and ends it."""

    def on_train_begin(self, logs=None):
        self.begin = lora_factors(self.model)

    def on_train_end(self, logs=None):
        self.end = lora_factors(self.model)


@pytest.mark.large  # several runs of train()
def test_a_resumed_lora_run_keeps_learning(setup, tmp_path):
    root, shards, preset = setup
    output = str(tmp_path / "lora_resume")
    args = dict(QUICK, epochs=2, lora_rank=2, lora_mlp=True)
    with pytest.raises(KeyboardInterrupt):
        train(preset, shards["tfrecord"], output, callbacks=[StopAfter(1)],
              **args)
    record = RecordFactors()
    classifier = train(preset, shards["tfrecord"], output,
                       callbacks=[record], **args)
    # Query, value, intermediate and output: A and B each.
    assert len(record.begin) == 8
    for path, value in record.begin.items():
        # The backup holds merged kernels: B starts at zero, A afresh.
        if path.endswith("lora_kernel_b"):
            assert not np.any(value)
        else:
            assert np.any(value)
        assert not np.allclose(record.end[path], value), path
    waves = np.full((1, 8000), 0.1, np.float32)
    restored = ASTClassifier.from_preset(os.path.join(output, "preset"))
    np.testing.assert_allclose(restored.predict(waves, verbose=0),
                               classifier.predict(waves, verbose=0),
                               atol=1e-5)
