"""`keras-ast pretrain`: unlabelled shards in, a resumable run, backbone
presets out that `train` fine-tunes."""

import json
import os

import keras
import numpy as np
import pytest
from test_pipelines import write_tone_source

from conftest import tiny_backbone
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.data.shards import make_shards
from keras_ast.training import pretrain as pretraining

COMMON = ["--epochs", "2", "--batch-size", "4", "--max-length", "48",
          "--learning-rate", "1e-3"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretraining")
    write_tone_source(root / "source")
    unlabelled = str(root / "unlabelled")
    make_shards(str(root / "source"), unlabelled, format="arrayrecord",
                num_workers=1, progress=False, unlabelled=True)
    labelled = str(root / "labelled")
    make_shards(str(root / "source"), labelled, format="tfrecord",
                num_workers=1, progress=False)
    preset = str(root / "backbone")
    tiny_backbone().save_to_preset(preset)
    return unlabelled, labelled, preset


class Interrupt(keras.callbacks.Callback):
    """Ctrl-C at the end of the first epoch, once its backup is written
    (callbacks given to the run come after its own)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def metrics_of(output):
    with open(os.path.join(output, "metrics.json")) as file:
        return json.load(file)


@pytest.mark.large  # several runs
def test_pretrain_resumes_and_writes_backbone_presets(setup, tmp_path,
                                                      capsys, monkeypatch):
    unlabelled, labelled, preset = setup
    output = str(tmp_path / "run")
    command = ["pretrain", "--preset", preset, "--data", unlabelled,
               "--validation", unlabelled, "--output", output,
               "--masking", "time_blocks", "--block-size", "1", *COMMON]
    real = pretraining.pretrain
    with monkeypatch.context() as patch:
        patch.setattr(pretraining, "pretrain", lambda *a, **k: real(
            *a, callbacks=[Interrupt()], **k))
        assert cli.main(command) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [m["epoch"] for m in metrics_of(output)] == [1]

    assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert "after epoch 1 of 2" in out and "from epoch 2" in out
    metrics = metrics_of(output)
    assert [m["epoch"] for m in metrics] == [1, 2]
    for entry in metrics:
        assert np.isfinite(entry["loss"]) and np.isfinite(entry["val_loss"])
    assert sorted(os.listdir(output)) == [
        "best_preset", "checkpoints", "metrics.json", "preset"]

    # An ordinary backbone preset, the settings of this run.
    backbone = ASTBackbone.from_preset(os.path.join(output, "preset"))
    assert backbone.max_length == 48
    start = ASTBackbone.from_preset(preset, max_length=48)
    changed = [not np.allclose(a, b) for a, b in
               zip(backbone.get_weights(), start.get_weights())]
    assert any(changed), "pretraining changed no weight"
    # A head on it reads the mean of the patch tokens unless told.
    classifier = ASTClassifier.from_preset(
        os.path.join(output, "best_preset"), num_classes=2)
    assert classifier.pooling == "mean"
    assert ASTClassifier.from_preset(
        os.path.join(output, "preset"), num_classes=2,
        pooling="cls").pooling == "cls"

    # A finished run is not redone.
    assert cli.main(command) == 0
    assert "nothing to do" in capsys.readouterr().out

    # `train` fine-tunes the pretrained backbone, with a mean head.
    tuned = str(tmp_path / "tuned")
    assert cli.main(["train", "--preset", os.path.join(output, "preset"),
                     "--train", labelled, "--output", tuned, "--epochs",
                     "1", "--batch-size", "4", "--no-mixup"]) == 0
    tuned = ASTClassifier.from_preset(os.path.join(tuned, "preset"))
    assert tuned.pooling == "mean" and tuned.labels == ["high", "low"]


def test_pretrain_on_labelled_shards_ignores_the_labels(setup, tmp_path):
    unlabelled, labelled, preset = setup
    pretrainer = pretraining.pretrain(
        preset, labelled, str(tmp_path / "run"), epochs=1, batch_size=4,
        max_length=48, keep_checkpoints=0, contrastive_weight=0.5,
        verbose=0)
    assert pretrainer.backbone.max_length == 48
    assert pretrainer.contrastive_weight == 0.5
    metrics = metrics_of(str(tmp_path / "run"))
    assert sorted(metrics[0]) == ["epoch", "loss"]
    assert not os.path.exists(tmp_path / "run" / "best_preset")


def test_pretrain_errors(setup, tmp_path, capsys):
    unlabelled, labelled, preset = setup
    output = tmp_path / "out"
    base = ["pretrain", "--data", unlabelled, "--output", str(output)]
    assert cli.main(base + ["--preset", str(tmp_path / "missing")]) == 1
    assert "Unknown preset" in capsys.readouterr().err
    assert cli.main(base + ["--preset", preset, "--mask-ratio", "1"]) == 1
    assert "mask_ratio" in capsys.readouterr().err
    assert cli.main(base + ["--preset", preset, "--monitor",
                            "val_loss"]) == 1
    assert "val_* need validation data" in capsys.readouterr().err
    # A run that failed before writing anything leaves no folder behind.
    assert not output.exists()
    with pytest.raises(SystemExit):
        cli.main(base + ["--preset", preset, "--masking", "squares"])
    assert "invalid choice" in capsys.readouterr().err
