"""`keras-ast evaluate`: metrics against scikit-learn, reports, `train`'s."""

import json
import math
import os

import numpy as np
import pytest
from test_pipelines import write_tone_source

from conftest import tiny_backbone
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.training import evaluate as evaluation
from keras_ast.data import pipelines
from keras_ast.data.shards import make_shards

metrics = pytest.importorskip("sklearn.metrics")


# --- metrics against scikit-learn ------------------------------------------


def random_multi_label(seed, clips=300, classes=8):
    rng = np.random.default_rng(seed)
    targets = (rng.random((clips, classes)) < 0.2).astype(np.int64)
    # Scores that carry some signal, rounded so that many are tied.
    scores = np.round(rng.random((clips, classes)) + 0.5 * targets, 1)
    targets[:, 3] = 0  # a class with no positives
    return targets, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_and_auc_match_sklearn(seed):
    targets, scores = random_multi_label(seed)
    assert len(np.unique(scores)) < 30  # ties everywhere
    with_positives = [k for k in range(targets.shape[1])
                      if targets[:, k].any()]
    for k in with_positives:
        ours = evaluation.average_precision(targets[:, k], scores[:, k])
        theirs = metrics.average_precision_score(targets[:, k], scores[:, k])
        assert abs(ours - theirs) < 1e-6
        ours = evaluation.roc_auc(targets[:, k], scores[:, k])
        theirs = metrics.roc_auc_score(targets[:, k], scores[:, k])
        assert abs(ours - theirs) < 1e-6
    # Untied scores too (a different path through the curve).
    rng = np.random.default_rng(seed)
    y, s = rng.random(200) < 0.3, rng.random(200)
    assert abs(evaluation.average_precision(y, s)
               - metrics.average_precision_score(y, s)) < 1e-6
    assert abs(evaluation.roc_auc(y, s)
               - metrics.roc_auc_score(y, s)) < 1e-6

    labels = [f"c{k}" for k in range(targets.shape[1])]
    report = evaluation.multi_label_metrics(targets, scores, labels)
    # mAP: the macro AP of the classes with positives (sklearn's macro
    # average would count the class without positives as 0).
    macro = metrics.average_precision_score(
        targets[:, with_positives], scores[:, with_positives],
        average="macro")
    assert abs(report["map"] - macro) < 1e-6
    mean_auc = metrics.roc_auc_score(targets[:, with_positives],
                                     scores[:, with_positives],
                                     average="macro")
    assert abs(report["mean_auc"] - mean_auc) < 1e-6
    assert report["classes_without_positives"] == ["c3"]
    assert math.isnan(report["per_class"]["c3"]["ap"])
    assert math.isnan(report["per_class"]["c3"]["auc"])
    assert report["per_class"]["c0"]["positives"] == int(targets[:, 0].sum())


def test_undefined_and_degenerate_curves():
    assert math.isnan(evaluation.average_precision([0, 0, 0], [.1, .2, .3]))
    assert math.isnan(evaluation.roc_auc([1, 1, 1], [.1, .2, .3]))
    # All scores tied: one threshold, AP is the positive share.
    assert evaluation.average_precision([1, 0, 0, 1], [.5] * 4) == 0.5
    assert evaluation.roc_auc([1, 0, 0, 1], [.5] * 4) == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        evaluation.average_precision([0, 1], [0.5])
    with pytest.raises(ValueError, match="finite"):
        evaluation.roc_auc([0, 1], [0.5, np.nan])


def test_d_prime():
    assert evaluation.d_prime(0.5) == 0.0
    assert evaluation.d_prime(1.0) == math.inf
    assert evaluation.d_prime(0.0) == -math.inf
    assert math.isnan(evaluation.d_prime(math.nan))
    with pytest.raises(ValueError, match="between 0 and 1"):
        evaluation.d_prime(1.5)
    stats = pytest.importorskip("scipy.stats")  # comes with scikit-learn
    for auc in (0.001, 0.3, 0.75, 0.9, 0.97, 0.999999):
        expected = math.sqrt(2) * stats.norm.ppf(auc)
        assert abs(evaluation.d_prime(auc) - expected) < 1e-9


def random_single_label(seed, clips=200, classes=6):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes - 1, clips)  # class 5: no support
    logits = rng.standard_normal((clips, classes))
    logits[np.arange(clips), y_true] += 1.0
    logits[:, 2] -= 100.0  # class 2: never predicted
    logits[0, 5] += 100.0  # class 5: predicted once, never true
    return y_true, logits


@pytest.mark.parametrize("seed", [0, 1])
def test_single_label_metrics_match_sklearn(seed):
    y_true, logits = random_single_label(seed)
    y_pred = logits.argmax(axis=1)
    assert 2 not in y_pred and 5 in y_pred and 5 not in y_true
    labels = [f"c{k}" for k in range(6)]
    report = evaluation.single_label_metrics(y_true, logits, labels)
    assert abs(report["accuracy"]
               - metrics.accuracy_score(y_true, y_pred)) < 1e-6
    for average in ("macro", "micro"):
        expected = metrics.f1_score(y_true, y_pred, average=average,
                                    zero_division=0)
        assert abs(report[f"{average}_f1"] - expected) < 1e-6
    np.testing.assert_array_equal(
        report["confusion_matrix"]["counts"],
        metrics.confusion_matrix(y_true, y_pred, labels=range(6)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=range(6), zero_division=0)
    for k, label in enumerate(labels):
        row = report["per_class"][label]
        assert abs(row["precision"] - precision[k]) < 1e-6
        assert abs(row["recall"] - recall[k]) < 1e-6
        assert abs(row["f1"] - f1[k]) < 1e-6
        assert row["support"] == support[k]
    # A class absent from labels and predictions does not enter macro F1.
    absent = evaluation.single_label_metrics(
        y_true, np.c_[logits, np.full(len(y_true), -1e3)], labels + ["c6"])
    assert absent["macro_f1"] == report["macro_f1"]


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match=r"shape \(clips, 3\)"):
        evaluation.single_label_metrics([0, 1], np.zeros((2, 2)),
                                        ["a", "b", "c"])
    with pytest.raises(ValueError, match="outside"):
        evaluation.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="integer class ids"):
        evaluation.confusion_matrix([0.5, 1.0], [0, 1], 3)


def test_report_file_is_strict_json(tmp_path):
    targets, scores = random_multi_label(0, clips=40, classes=4)
    report = evaluation.multi_label_metrics(targets, scores,
                                            ["a", "b", "c", "d"])
    report.update(data="x", multi_label=True, num_clips=40,
                  skipped_records=0)
    evaluation.write_report(report, str(tmp_path))
    text = (tmp_path / "evaluation.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["per_class"]["d"]["ap"] is None
    assert "mAP" in evaluation.format_report(report)


# --- a classifier on shards ------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    lengths = write_tone_source(root / "source")
    shards = {}
    for fmt in ("tfrecord", "arrayrecord"):
        shards[fmt] = str(root / fmt)
        make_shards(str(root / "source"), shards[fmt], format=fmt,
                    num_workers=1, progress=False)
    # Multi-label: every clip is a "tone", and "high" or "low".
    manifest = root / "multi.jsonl"
    manifest.write_text("".join(
        json.dumps({"path": path, "labels": [
            "tone", "high" if "high_" in path else "low"]}) + "\n"
        for path in sorted(lengths)))
    shards["multi"] = str(root / "multi")
    make_shards(str(manifest), shards["multi"], format="tfrecord",
                num_workers=1, progress=False)
    backbone = str(root / "backbone")
    tiny_backbone().save_to_preset(backbone)
    presets = {}
    for name, labels, multi in (("single", ["high", "low"], False),
                                ("multi", ["high", "low", "tone"], True)):
        presets[name] = str(root / f"preset_{name}")
        ASTClassifier.from_preset(
            backbone, num_classes=len(labels), labels=labels,
            multi_label=multi).save_to_preset(presets[name])
    return root, shards, presets, backbone


def clips_and_labels(classifier, path):
    """The clips `evaluate` sees, read independently of it."""
    converter = classifier.preprocessor
    dataset = pipelines.tf_dataset(
        path, 64, clip_seconds=converter.num_samples / converter.sampling_rate)
    waves, labels = zip(*dataset.as_numpy_iterator())
    return np.concatenate(waves), np.concatenate(labels)


def test_evaluate_single_label_api_and_cli(setup, tmp_path, capsys,
                                          monkeypatch):
    root, shards, presets, _ = setup
    classifier = ASTClassifier.from_preset(presets["single"])
    waves, labels = clips_and_labels(classifier, shards["tfrecord"])
    predicted = classifier.predict(waves, verbose=0).argmax(axis=1)
    expected = float(np.mean(predicted == labels))

    out = tmp_path / "api"
    report = evaluation.evaluate(classifier, shards["tfrecord"],
                                 output=str(out), batch_size=5)
    assert report["num_clips"] == 12 and report["skipped_records"] == 0
    assert abs(report["accuracy"] - expected) < 1e-6
    assert abs(report["macro_f1"] - metrics.f1_score(
        labels, predicted, average="macro", zero_division=0)) < 1e-6
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["multi_label"] is False
    assert set(saved["per_class"]) == {"high", "low"}
    assert saved["per_class"]["high"]["support"] == 6
    assert saved["confusion_matrix"]["labels"] == ["high", "low"]
    assert np.sum(saved["confusion_matrix"]["counts"]) == 12
    pytest.importorskip("matplotlib")
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    # The CLI on the ArrayRecord copy of the same clips: the same figures.
    # The report names the data as the user did (a relative path stays
    # relative: no machine's folders in a shared report or notebook).
    out = tmp_path / "cli"
    monkeypatch.chdir(root)
    status = cli.main(["evaluate", "--preset", presets["single"], "--data",
                       os.path.basename(shards["arrayrecord"]), "--output",
                       str(out), "--batch-size", "4"])
    assert status == 0
    printed = capsys.readouterr().out
    assert printed.startswith("arrayrecord: 12 clips, 0 skipped\n")
    assert "accuracy" in printed and "high" in printed
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["num_clips"] == 12
    assert abs(saved["accuracy"] - expected) < 1e-6


def test_evaluate_multi_label(setup):
    root, shards, presets, _ = setup
    classifier = ASTClassifier.from_preset(presets["multi"])
    waves, targets = clips_and_labels(classifier, shards["multi"])
    scores = classifier.predict_scores(waves, verbose=0)
    report = evaluation.evaluate(presets["multi"], shards["multi"])
    # "tone" has no negatives: an AP (1) but no AUC.
    expected = np.mean([metrics.average_precision_score(targets[:, k],
                                                        scores[:, k])
                        for k in range(3)])
    assert abs(report["map"] - expected) < 1e-5
    auc = np.mean([metrics.roc_auc_score(targets[:, k], scores[:, k])
                   for k in range(2)])
    assert abs(report["mean_auc"] - auc) < 1e-5
    assert math.isnan(report["per_class"]["tone"]["auc"])
    assert report["per_class"]["tone"]["ap"] == 1.0


def test_evaluate_refuses_other_labels(setup, capsys):
    root, shards, presets, _ = setup
    with pytest.raises(ValueError, match="not the classifier's"):
        evaluation.evaluate(presets["multi"], shards["tfrecord"])
    status = cli.main(["evaluate", "--preset", presets["single"], "--data",
                       str(root / "missing")])
    assert status == 1
    assert "keras-ast evaluate: error" in capsys.readouterr().err


def test_train_writes_evaluation(setup, tmp_path):
    from keras_ast.training.train import train

    root, shards, _, backbone = setup
    output = tmp_path / "run"
    classifier = train(backbone, shards["tfrecord"], str(output),
                       validation=shards["tfrecord"], epochs=1, batch_size=4,
                       verbose=0)
    saved = json.loads((output / "evaluation.json").read_text())
    assert saved["num_clips"] == 12
    waves, labels = clips_and_labels(classifier, shards["tfrecord"])
    predicted = classifier.predict(waves, verbose=0).argmax(axis=1)
    assert abs(saved["accuracy"] - np.mean(predicted == labels)) < 1e-6
    assert os.path.exists(output / "preset")


def test_confusion_matrix_picture():
    pytest.importorskip("matplotlib")
    from keras_ast import plot

    figure = plot.confusion_matrix([[3, 1], [0, 4]], ["yes", "no"])
    (ax,) = [a for a in figure.axes if a.get_title()]
    assert ax.get_title() == "8 clips, accuracy 87.5%"
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "4"]
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        plot.confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"])


def test_evaluate_counts_the_records_the_pipeline_skips(setup, tmp_path):
    # A record that does not decode (NaN audio), in a shard whose sha256
    # is updated: the set opens, and the pipeline skips the record.
    import dataclasses
    import shutil

    import tensorflow as tf

    from keras_ast.data import records
    from keras_ast.data.info import read_info
    from keras_ast.data.info import write_info
    from keras_ast.utils.files import sha256_file

    root, shards, presets, _ = setup
    directory = tmp_path / "bad"
    shutil.copytree(shards["tfrecord"], directory)
    info = read_info(directory)
    first = info.shards[0]
    path = os.path.join(directory, first.file)
    existing = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    bad = records.encode_example(np.full(100, np.nan, np.float32), [0], "x")
    with tf.io.TFRecordWriter(path) as writer:
        for record in existing + [bad]:
            writer.write(record)
    counts = dict(first.class_counts)
    counts["high"] = counts.get("high", 0) + 1
    shard = dataclasses.replace(first, num_examples=first.num_examples + 1,
                                sha256=sha256_file(path),
                                class_counts=counts)
    info = write_info(directory, dataclasses.replace(
        info, shards=(shard,) + info.shards[1:],
        num_examples=info.num_examples + 1))
    # Handed the DatasetInfo: the report names its directory.
    with pytest.warns(UserWarning, match="1 records of .* were skipped"):
        report = evaluation.evaluate(presets["single"], info, batch_size=5)
    assert report["num_clips"] == 12 and report["skipped_records"] == 1
    assert report["data"] == str(directory)
