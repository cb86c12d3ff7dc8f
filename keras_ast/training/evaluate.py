"""Evaluating a classifier on shards: accuracy/F1, mAP/d-prime, a report.

`evaluate` runs a classifier over a shard directory (the evaluation
pipeline: no shuffling, no augmentation, clips kept from their start) and
computes, with numpy only:
- single-label data: accuracy, macro and micro F1, per-class precision,
  recall, F1 and support, the confusion matrix (rows: true class, columns:
  predicted class), and a confusion-matrix picture (`keras_ast.plot`, when
  matplotlib is installed);
- multi-label data: mAP, per-class average precision, mean ROC AUC and
  d-prime, as the AST authors report them for AudioSet.

Average precision is scikit-learn's `average_precision_score`, the one the
authors call class by class: AP = sum over distinct scores, highest first,
of (R_n - R_(n-1)) * P_n, a step-wise sum over every distinct score with no
interpolation (tied scores form one step). Keras' `AUC(curve="PR")` (the
`map` metric `fit` logs) approximates it: scores are counted in fixed
threshold buckets (200 by default, evenly spaced in [0, 1]) and the curve
between buckets is interpolated, so it depends on the bucket count and
drifts from AP when scores crowd into a few buckets (small sigmoid scores
of rare classes). A class with no positive clip has no AP (scikit-learn
returns 0 for it, with a warning): its AP is None and it is left out of
the mAP; likewise a class whose clips are all positive or all negative has
no AUC and is left out of the mean AUC. d-prime is sqrt(2) * Phi^-1(mean
AUC) (the authors' `d_prime(mean_auc)`), with the standard library's
inverse normal CDF; it is infinite (None in JSON) at an AUC of 0 or 1.
Macro F1 averages the classes that occur in the labels or the predictions
(scikit-learn's default); an undefined precision or recall (nothing
predicted, or no support) counts as 0.

Examples:
>>> from keras_ast.training.evaluate import evaluate
>>> report = evaluate("runs/sc/preset", "shards/test", output="runs/sc")
>>> report["accuracy"], report["macro_f1"]
"""

import math
import os
import statistics
import warnings

import numpy as np

from keras_ast.data.info import as_info
from keras_ast.utils.files import write_json

REPORT_FILE = "evaluation.json"
PLOT_FILE = "confusion_matrix.png"


# --- binary curves --------------------------------------------------------


def _binary_curve(y_true, scores):
    """True and false positives at each distinct score, highest first."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    if y_true.shape != scores.shape:
        raise ValueError(
            f"Labels and scores differ in length: {y_true.shape[0]} vs "
            f"{scores.shape[0]}.")
    if not np.isfinite(scores).all():
        raise ValueError("Scores must be finite (got NaN or infinity).")
    order = np.argsort(-scores, kind="mergesort")
    scores, y_true = scores[order], y_true[order]
    # The last position of each run of tied scores: a tie is one threshold.
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(y_true)[last].astype(np.float64)
    fps = (last + 1) - tps
    return tps, fps


def average_precision(y_true, scores):
    """Average precision of one class, as scikit-learn computes it.

    The step-wise sum over distinct scores, highest first, of
    (R_n - R_(n-1)) * P_n, without interpolation.

    Args:
        y_true: 0/1 (or bool) labels, `(clips,)`.
        scores: the class's scores, `(clips,)`.

    Returns:
        The AP, or NaN when no clip is positive (undefined).

    Examples:
    >>> average_precision([0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8])
    0.5833333333333333
    """
    tps, fps = _binary_curve(y_true, scores)
    if tps.size == 0 or tps[-1] == 0:
        return math.nan
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y_true, scores):
    """Area under the ROC curve of one class (trapezoids; ties are a line).

    Returns NaN when the clips are all positive or all negative.

    Examples:
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    tps, fps = _binary_curve(y_true, scores)
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        return math.nan
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def d_prime(auc):
    """Sensitivity index of an AUC: sqrt(2) * Phi^-1(auc).

    Phi^-1 is the inverse standard normal CDF
    (`statistics.NormalDist().inv_cdf`). An AUC of 0.5 gives 0, of 1 gives
    infinity, NaN gives NaN.

    Examples:
    >>> round(d_prime(0.9), 4)
    1.8124
    """
    auc = float(auc)
    if math.isnan(auc):
        return math.nan
    if not 0.0 <= auc <= 1.0:
        raise ValueError(f"An AUC is between 0 and 1, got {auc}.")
    if auc in (0.0, 1.0):
        return math.copysign(math.inf, auc - 0.5)
    return math.sqrt(2.0) * statistics.NormalDist().inv_cdf(auc)


# --- single-label ---------------------------------------------------------


def _class_ids(name, ids, num_classes):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer class ids, "
                         f"got {ids.dtype} of shape {ids.shape}.")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"{name} holds class ids outside [0, "
                         f"{num_classes}): {ids.min()}..{ids.max()}.")
    return ids


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts: row `i`, column `j` = clips of class `i` predicted as `j`.

    Examples:
    >>> confusion_matrix([0, 1, 1], [0, 0, 1], 3)[1].tolist()
    [1, 1, 0]
    """
    y_true = _class_ids("y_true", y_true, num_classes)
    y_pred = _class_ids("y_pred", y_pred, num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: "
                         f"{y_true.size} vs {y_pred.size}.")
    flat = np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator,
                     out=np.zeros_like(numerator), where=denominator > 0)


def precision_recall_f1(counts):
    """Per-class `(precision, recall, f1, support)` of a confusion matrix.

    An undefined precision (never predicted) or recall (no support) is 0,
    as is F1 when both are 0 (scikit-learn's `zero_division=0`).
    """
    counts = np.asarray(counts, np.int64)
    tp = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)
    return precision, recall, f1, support


def single_label_metrics(y_true, scores, labels):
    """Accuracy, macro/micro F1, per-class figures and the confusion matrix.

    Args:
        y_true: integer class ids, `(clips,)`.
        scores: scores or logits, `(clips, num_classes)`; the prediction is
            the highest.
        labels: the class names, one per column.

    Returns:
        A dict: `accuracy`, `macro_f1`, `micro_f1`, `per_class` (label ->
        precision, recall, f1, support) and `confusion_matrix` (`labels`,
        `counts`: rows true, columns predicted).
    """
    scores = _scores(scores, labels)
    y_pred = np.argmax(scores, axis=1)
    counts = confusion_matrix(y_true, y_pred, len(labels))
    precision, recall, f1, support = precision_recall_f1(counts)
    present = (support > 0) | (counts.sum(axis=0) > 0)
    tp = np.trace(counts)
    total = counts.sum()
    # Micro: errors count once as a false positive, once as a false negative.
    micro_f1 = float(_ratio(2 * tp, 2 * total))
    return {
        "accuracy": float(tp / total) if total else math.nan,
        "macro_f1": float(np.mean(f1[present])) if present.any() else math.nan,
        "micro_f1": micro_f1,
        "per_class": {
            str(label): {"precision": float(precision[i]),
                         "recall": float(recall[i]), "f1": float(f1[i]),
                         "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": [str(label) for label in labels],
                             "counts": counts.tolist()},
    }


# --- multi-label ----------------------------------------------------------


def _scores(scores, labels):
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"Expected scores of shape (clips, {len(labels)}), "
                         f"got {scores.shape}.")
    return scores


def _nanmean(values):
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def multi_label_metrics(targets, scores, labels):
    """mAP, per-class AP, mean AUC and d-prime, as the AST authors report.

    Args:
        targets: multi-hot labels, `(clips, num_classes)` (values >= 0.5
            are positive).
        scores: sigmoid scores or logits (any monotonic score gives the
            same figures), `(clips, num_classes)`.
        labels: the class names, one per column.

    Returns:
        A dict: `map`, `mean_auc`, `d_prime`, `per_class` (label -> ap, auc,
        positives) and `classes_without_positives` (left out of the mAP).
    """
    scores = _scores(scores, labels)
    targets = np.asarray(targets)
    if targets.shape != scores.shape:
        raise ValueError(f"Targets {targets.shape} and scores "
                         f"{scores.shape} differ in shape.")
    targets = targets >= 0.5
    ap = [average_precision(targets[:, k], scores[:, k])
          for k in range(len(labels))]
    auc = [roc_auc(targets[:, k], scores[:, k]) for k in range(len(labels))]
    mean_auc = _nanmean(auc)
    positives = targets.sum(axis=0)
    return {
        "map": _nanmean(ap),
        "mean_auc": mean_auc,
        "d_prime": d_prime(mean_auc),
        "per_class": {
            str(label): {"ap": ap[k], "auc": auc[k],
                         "positives": int(positives[k])}
            for k, label in enumerate(labels)
        },
        "classes_without_positives": [str(labels[k])
                                      for k in np.flatnonzero(positives == 0)],
    }


# --- running a classifier -------------------------------------------------


def _dataset(info, batch_size, clip_seconds, num_workers):
    """`(batches as numpy arrays, PipelineInfo)` of the evaluation
    pipeline of a shard set."""
    from keras_ast.data.pipelines import dataset_for

    # Every clip, also when `train` evaluates on process 0 of several.
    dataset, info = dataset_for(info, batch_size, training=False,
                                clip_seconds=clip_seconds, part=(0, 1),
                                num_workers=num_workers, with_info=True)
    if info.record_format == "tfrecord":
        dataset = dataset.as_numpy_iterator()
    return dataset, info


def _classifier(preset_or_classifier):
    from keras_ast.models.classifier import ASTClassifier

    if isinstance(preset_or_classifier, ASTClassifier):
        return preset_or_classifier
    return ASTClassifier.from_preset(preset_or_classifier)


def _check_match(classifier, info):
    """Refuses a data set whose classes are not the classifier's."""
    if classifier.preprocessor is None:
        raise ValueError("evaluate needs a classifier with a preprocessor "
                         "(it reads waveforms from the shards).")
    data = info.directory
    labels = list(info.labels)
    if classifier.num_classes != len(labels) or (
        classifier.labels is not None and list(classifier.labels) != labels
    ):
        raise ValueError(
            f"{data} has {len(labels)} labels that are not the "
            f"classifier's {classifier.num_classes} "
            f"({(classifier.labels or [])[:5]}... vs {labels[:5]}...): "
            "evaluate a classifier trained on this data set's labels.")
    if info.multi_label != classifier.multi_label:
        raise ValueError(
            f"{data} is {'multi' if info.multi_label else 'single'}-label"
            f" but the classifier is "
            f"{'multi' if classifier.multi_label else 'single'}-label.")
    rate = classifier.preprocessor.sampling_rate
    if info.sampling_rate != int(rate):
        raise ValueError(f"{data} is sampled at {info.sampling_rate} Hz, "
                         f"the classifier takes {rate} Hz.")


def _json_safe(value):
    """The report with NaN and infinities as None (strict JSON)."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(preset_or_classifier, data, output=None, batch_size=32,
             num_workers=0):
    """Scores a classifier on a shard directory and reports its figures.

    Runs the classifier (inference mode, no augmentation) over every clip
    of `data` through the pipeline of its record format
    (`keras_ast.data.pipelines.dataset_for`), clips cut or padded to the
    model's input from their start, and computes the figures of the module
    docstring. Records the pipeline skips (they cannot be read or do not
    decode) are counted in the report's `skipped_records`, with a warning.

    Args:
        preset_or_classifier: an `ASTClassifier`, or anything
            `ASTClassifier.from_preset` takes.
        data: a shard directory (`keras_ast.data.make_shards`) with the
            classifier's labels, or its `DatasetInfo`.
        output: a folder for `evaluation.json` (and, for single-label data
            with matplotlib installed, `confusion_matrix.png`); None writes
            nothing.
        batch_size: clips per model call.
        num_workers: Grain decoding processes (ArrayRecord shards).

    Returns:
        The report (a dict; what `evaluation.json` holds): `data` (the
        shard directory as given), `multi_label`, `num_clips`,
        `skipped_records` and the figures. Undefined figures are NaN here
        and null in the file.

    Raises:
        ValueError: the data set's labels, multi-label setting or sampling
            rate are not the classifier's, or no clip could be read.
        FileNotFoundError: as `read_info`.

    Examples:
        ```python
        report = evaluate("runs/sc/preset", "shards/test", output="eval")
        print(format_report(report))
        ```
    """
    import keras

    info = as_info(data)
    info.require_labels("evaluate a classifier")
    data = info.directory
    classifier = _classifier(preset_or_classifier)
    _check_match(classifier, info)
    converter = classifier.preprocessor
    clip_seconds = converter.num_samples / converter.sampling_rate
    targets, scores = [], []
    batches, stream = _dataset(info, batch_size, clip_seconds, num_workers)
    for waveforms, labels in batches:
        logits = classifier.predict_on_batch(np.asarray(waveforms))
        scores.append(keras.ops.convert_to_numpy(classifier.scores(logits)))
        targets.append(np.asarray(labels))
    if not scores:
        raise ValueError(f"No clip of {data} could be read.")
    targets = np.concatenate(targets)
    scores = np.concatenate(scores).astype(np.float64)
    skipped = stream.skipped_records
    if skipped:
        warnings.warn(f"{skipped} records of {data} were skipped (they do "
                      "not decode); the figures leave them out.",
                      stacklevel=2)
    labels = list(info.labels)
    report = {"data": data, "multi_label": info.multi_label,
              "num_clips": int(len(scores)), "skipped_records": skipped}
    if info.multi_label:
        report.update(multi_label_metrics(targets, scores, labels))
    else:
        report.update(single_label_metrics(targets.astype(np.int64), scores,
                                           labels))
    if output is not None:
        write_report(report, output)
    return report


def write_report(report, output):
    """Writes `OUTPUT/evaluation.json` and, if it can, the matrix picture.

    The picture (`confusion_matrix.png`, single-label reports) is drawn
    only when matplotlib is installed (the `plot` extra).
    """
    output = os.fspath(output)
    os.makedirs(output, exist_ok=True)
    write_json(os.path.join(output, REPORT_FILE), _json_safe(report))
    matrix = report.get("confusion_matrix")
    if matrix is None:
        return
    try:
        from keras_ast import plot

        figure = plot.confusion_matrix(matrix["counts"], matrix["labels"])
    except ImportError:
        return
    from keras_ast.utils.files import atomic_path

    with atomic_path(os.path.join(output, PLOT_FILE)) as temp:
        figure.savefig(temp, format="png", dpi=100)


def _number(value):
    return "n/a" if value is None or not math.isfinite(value) else (
        f"{value:.4f}")


def format_report(report, max_rows=30):
    """A short text table of a report (what `keras-ast evaluate` prints).

    A header line (data, clips, skipped records), the summary figures
    (accuracy and F1, or mAP, mean AUC and d-prime for multi-label data),
    then one row per class. Undefined figures print as `n/a`.

    Args:
        report: a report of `evaluate` (or the content of its
            `evaluation.json`).
        max_rows: the most class rows printed.

    Returns:
        The table, lines joined by newlines.

    Examples:
        ```python
        report = keras_ast.evaluate(classifier, "shards/test")
        print(keras_ast.format_report(report))
        ```
    """
    lines = [f"{report['data']}: {report['num_clips']} clips, "
             f"{report['skipped_records']} skipped"]
    per_class = report["per_class"]
    if report["multi_label"]:
        lines.append(f"mAP {_number(report['map'])}  mean AUC "
                     f"{_number(report['mean_auc'])}  d-prime "
                     f"{_number(report['d_prime'])}")
        columns = ("ap", "auc", "positives")
    else:
        lines.append(f"accuracy {_number(report['accuracy'])}  macro F1 "
                     f"{_number(report['macro_f1'])}  micro F1 "
                     f"{_number(report['micro_f1'])}")
        columns = ("precision", "recall", "f1", "support")
    width = max([len("label")] + [len(label) for label in per_class])
    width = min(width, 40)
    lines.append(f"{'label':<{width}}  "
                 + "  ".join(f"{name:>9}" for name in columns))
    for label, row in list(per_class.items())[:max_rows]:
        cells = [f"{row[name]:>9d}" if isinstance(row[name], int)
                 else f"{_number(row[name]):>9}" for name in columns]
        lines.append(f"{label[:width]:<{width}}  " + "  ".join(cells))
    if len(per_class) > max_rows:
        lines.append(f"... and {len(per_class) - max_rows} more classes")
    return "\n".join(lines)
