"""Balanced sampling: AudioSet-style weights that draw every label equally.

The AST authors sample AudioSet with torch's `WeightedRandomSampler`
(with replacement), a clip's weight being the sum over its labels of
`1 / (clips with that label)`: every label is then drawn about equally
often, however rare. Both pipelines do this with `balanced=True`:

- `grain_dataset` draws records with replacement by these weights (random
  access), from the labels of every record, read once per process when the
  data set is opened (`record_labels`: one pass over the shards, like the
  sha256 check, cached while the shards are unchanged);
- `tf_dataset` streams, so it repeats each record a random number of times
  with the expected count `num_examples * weight / sum of weights` (0 or 1
  for common labels, several for rare ones) and shuffles after: the same
  label frequencies, from `dataset.json`'s class counts alone.

Numpy only: Grain workers load this module.
"""

import os
import threading

import numpy as np

from keras_ast.data import records

# (real path of each shard, its sha256) -> label ids of its records.
_LABELS = {}
_LABELS_LOCK = threading.Lock()


def label_weights(info):
    """`1 / (clips with label i)` for every label id of a shard set.

    Labels without clips weigh 0. Returns float64 `(num_labels,)`.

    Args:
        info: a shard set's `DatasetInfo` (`read_info`).

    Examples:
    >>> weights = label_weights(read_info("shards/train"))
    """
    counts = np.array([info.class_counts.get(label, 0)
                       for label in info.labels], np.float64)
    return np.divide(1.0, counts, out=np.zeros_like(counts),
                     where=counts > 0)


def expected_draws(info):
    """`num_examples / sum of the record weights`: a record of weight `w`
    is drawn `w` times this per pass on average (the sum of the weights is
    the number of labels that have clips)."""
    present = int(np.count_nonzero(label_weights(info)))
    if not present:
        raise ValueError("balanced sampling: the data set has no labelled "
                         "clips (class_counts are all 0).")
    return info.num_examples / present


def _shard_labels(file):
    """The label ids of every record of one ArrayRecord shard."""
    import grain

    source = grain.sources.ArrayRecordDataSource([file])
    labels = []
    for start in range(0, len(source), 256):
        chunk = source.__getitems__(range(start, min(start + 256,
                                                     len(source))))
        labels.extend(records.decode(record)[1] for record in chunk)
    return labels


def record_labels(info):
    """The label ids of every record of an ArrayRecord shard set, in order.

    Reads every shard once per process (cached by shard path and sha256).

    Args:
        info: the shard set's `DatasetInfo` (`read_info(path)`).

    Returns:
        A list of int32 arrays, one per record.

    Raises:
        ValueError: the shards are not ArrayRecord shards.

    Examples:
    >>> labels = record_labels(read_info("shards/train"))
    """
    if info.record_format != "arrayrecord":
        raise ValueError(
            "record_labels reads ArrayRecord shards; "
            f"{info.directory} holds {info.record_format} shards.")
    result = []
    for shard, path in zip(info.shards, info.shard_paths()):
        file = os.path.realpath(path)
        key = (file, shard.sha256)
        with _LABELS_LOCK:
            labels = _LABELS.get(key)
        if labels is None:
            labels = _shard_labels(file)
            with _LABELS_LOCK:
                _LABELS[key] = labels
        result.extend(labels)
    return result


def record_weights(labels, info):
    """A weight per record: the sum over its labels of `label_weights`.

    Args:
        labels: label ids per record (`record_labels`).
        info: the shard set's `DatasetInfo`.

    Examples:
    >>> weights = record_weights([[0], [1], [1]], info)  # 1, 0.5, 0.5
    """
    per_label = label_weights(info)
    return np.array([per_label[np.asarray(ids, np.int64)].sum()
                     for ids in labels], np.float64)


class WeightedDraw:
    """Grain transform: stream position -> a record index drawn by weight.

    Position `i` draws record `j` with probability `weights[j] / sum`,
    from a generator seeded by `(seed, salt, i)`: with replacement,
    reproducible, and the same whatever the worker. Picklable.

    Args:
        weights: a weight per record (`record_weights`).
        seed: the pipeline's seed.
        salt: separates streams drawn with the same seed (e.g. the process
            index of multi-host training).
    """

    def __init__(self, weights, seed, salt=0):
        weights = np.asarray(weights, np.float64)
        if weights.size == 0 or not weights.sum() > 0:
            raise ValueError("balanced sampling needs records with labels "
                             "of positive weight.")
        self.cumulative = np.cumsum(weights / weights.sum())
        self.seed = seed
        self.salt = salt

    def __call__(self, index, _):
        # 0x6261 ("ba"): these draws do not repeat the crops' generator,
        # which is seeded by (seed, index).
        rng = np.random.default_rng([self.seed, 0x6261, self.salt, index])
        pick = np.searchsorted(self.cumulative, rng.random(), side="right")
        return int(min(pick, self.cumulative.size - 1))
