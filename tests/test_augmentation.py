"""Feature noise and roll, waveform time shift, balanced sampling.

The noise and roll of `SpecAugment` (the authors' Speech Commands `noise`
option) run on every backend, eagerly and compiled; time shift and
balanced sampling are checked in both pipelines (tf.data and Grain).
"""

import collections

import keras
import numpy as np
import pytest
import soundfile
from conftest import compiled
from conftest import to_numpy

from keras_ast.data import balance
from keras_ast.data import pipelines
from keras_ast.data.info import DatasetInfo
from keras_ast.data.info import ShardInfo
from keras_ast.data.info import read_info
from keras_ast.data.shards import make_shards
from keras_ast.data.spec_augment import SpecAugment

RATE = 16000
FORMATS = ["tfrecord", "arrayrecord"]


def features(batch=4, time=30, freq=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, time, freq)).astype("float32")


def roll_of(x, y, max_roll):
    """The shift `s` in [-max_roll, max_roll] with y == roll(x, s), or
    fails."""
    for shift in range(-max_roll, max_roll + 1):
        if np.array_equal(np.roll(x, shift, axis=0), y):
            return shift
    raise AssertionError("not a roll of the input within the bound")


# --- feature noise and roll (SpecAugment's `noise` and `max_roll`)


def test_roll_is_a_bounded_circular_shift_per_example():
    layer = SpecAugment(0, 0, max_roll=3, seed=1)
    x = features(batch=16)
    y = to_numpy(layer(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    shifts = [roll_of(x[i], y[i], 3) for i in range(len(x))]
    assert len(set(shifts)) > 1, "every example draws its own shift"


def test_noise_is_uniform_and_bounded():
    layer = SpecAugment(0, 0, noise=0.1, seed=2)
    x = features(batch=8, time=50)
    y = to_numpy(layer(x, training=True))
    assert y.dtype == np.float32
    added = y - x
    assert added.min() >= -1e-6 and added.max() < 0.1 + 1e-6
    # Each example has its own level (the authors' np.random.rand()).
    levels = added.reshape(len(x), -1).max(axis=1)
    assert np.ptp(levels) > 1e-3 and added.mean() > 1e-4


def test_noise_and_roll_seeded_and_off_at_inference():
    x = features()

    def run(seed):
        layer = SpecAugment(4, 6, noise=0.1, max_roll=10, seed=seed)
        return to_numpy(layer(x, training=True))

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))
    layer = SpecAugment(4, 6, noise=0.1, max_roll=10, seed=3)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)


def test_noise_and_roll_compiled_and_unbatched():
    layer = SpecAugment(0, 0, noise=0.05, max_roll=2, seed=5)
    x = features(batch=3)
    fn = compiled(lambda v: layer(v, training=True))
    y = to_numpy(fn(keras.ops.convert_to_tensor(x)))
    assert y.shape == x.shape and y.dtype == np.float32
    for i in range(len(x)):
        shift = min(range(-2, 3), key=lambda s: np.abs(
            np.roll(x[i], s, axis=0) - y[i]).max())
        added = y[i] - np.roll(x[i], shift, axis=0)
        assert added.min() >= -1e-6 and added.max() < 0.05 + 1e-6
    # A fresh layer: under jax.jit the first one's seed state was traced.
    single = to_numpy(SpecAugment(0, 0, noise=0.05, max_roll=2, seed=5)(
        x[0], training=True))
    assert single.shape == x[0].shape


def test_noise_and_roll_config_round_trip():
    layer = SpecAugment(8, 4, noise=0.1, max_roll=10, seed=7)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert (restored.noise, restored.max_roll) == (0.1, 10)
    x = features()
    np.testing.assert_array_equal(to_numpy(layer(x, training=True)),
                                  to_numpy(restored(x, training=True)))
    with pytest.raises(ValueError, match="noise"):
        SpecAugment(noise=-0.1)
    with pytest.raises(ValueError, match="max_roll"):
        SpecAugment(max_roll=-1)


# --- shard sets


def write_source(root, counts):
    """Short noise clips, `counts[label]` of each label, as class folders."""
    rng = np.random.default_rng(0)
    for label, count in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(count):
            wave = 0.1 * rng.standard_normal(int(RATE * 0.05))
            soundfile.write(root / label / f"{i}.wav",
                            wave.astype(np.float32), RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """12 clips of `a`, 3 of `b`, 1 of `c`, in both formats."""
    root = tmp_path_factory.mktemp("imbalanced")
    write_source(root / "source", {"a": 12, "b": 3, "c": 1})
    out = {}
    for fmt in FORMATS:
        out[fmt] = str(root / fmt)
        make_shards(str(root / "source"), out[fmt], format=fmt,
                    shard_size_mb=0.01, num_workers=1, progress=False)
    return out


def dataset(fmt, path, **kwargs):
    if fmt == "tfrecord":
        return pipelines.tf_dataset(path, 4, repeat=True, **kwargs)
    return pipelines.grain_dataset(path, 4, num_epochs=None, **kwargs)


def batches(data, count):
    out = []
    for waves, labels in data:
        out.append((np.asarray(waves), np.asarray(labels)))
        if len(out) == count:
            return out
    return out


# --- time shift


@pytest.mark.parametrize("fmt", FORMATS)
def test_time_shift_rolls_each_clip_within_bound(imbalanced, fmt):
    path = imbalanced[fmt]
    plain = batches(dataset(fmt, path, training=True, seed=3), 8)
    shifted = batches(dataset(fmt, path, training=True, seed=3,
                              time_shift=0.25), 8)
    max_shift = int(0.25 * plain[0][0].shape[1])
    shifts = set()
    for (x, labels), (y, same_labels) in zip(plain, shifted):
        np.testing.assert_array_equal(labels, same_labels)
        for a, b in zip(x, y):
            shifts.add(roll_of(a, b, max_shift))
    assert len(shifts) > 3
    # Evaluation pipelines never shift.
    evaluation = dataset(fmt, path, training=False, time_shift=0.25)
    again = dataset(fmt, path, training=False)
    for (x, _), (y, _) in zip(batches(evaluation, 4), batches(again, 4)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fmt", FORMATS)
def test_time_shift_out_of_range_is_refused(imbalanced, fmt):
    with pytest.raises(ValueError, match="time_shift"):
        dataset(fmt, imbalanced[fmt], training=True, time_shift=1.5)


def test_shift_audio():
    audio = np.arange(10, dtype=np.float32)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = pipelines.shift_audio(audio, 3, rng)
        assert abs(roll_of(audio[:, None], out[:, None], 3)) <= 3
    assert pipelines.shift_audio(audio, 0, rng) is audio


# --- balanced sampling


def frequencies(fmt, path, balanced, num_batches=150):
    data = dataset(fmt, path, training=True, seed=1, balanced=balanced)
    counts = collections.Counter()
    for _, labels in batches(data, num_batches):
        counts.update(labels.tolist())
    total = sum(counts.values())
    return np.array([counts[i] / total for i in range(3)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_balanced_sampling_draws_labels_uniformly(imbalanced, fmt):
    path = imbalanced[fmt]
    plain = frequencies(fmt, path, balanced=False)
    np.testing.assert_allclose(plain, [12 / 16, 3 / 16, 1 / 16], atol=0.04)
    balanced = frequencies(fmt, path, balanced=True)
    np.testing.assert_allclose(balanced, [1 / 3] * 3, atol=0.06)


def test_record_weights_sum_over_labels():
    info = DatasetInfo(
        record_format="arrayrecord", sampling_rate=16000, multi_label=True,
        labels=["a", "b", "c"], num_examples=3, max_num_samples=1,
        shards=[ShardInfo("shard-00000.array_record", 3)],
        class_counts={"a": 2, "b": 1, "c": 0})
    weights = balance.record_weights([[0], [0, 1], [1]], info)
    np.testing.assert_allclose(weights, [0.5, 1.5, 1.0])
    # A record of weight w is drawn w * expected_draws times per pass:
    # 3 draws per pass over the 2 labels that have clips.
    assert balance.expected_draws(info) == 1.5


def test_record_labels_of_arrayrecord_shards(imbalanced):
    path = imbalanced["arrayrecord"]
    info = read_info(path)
    labels = balance.record_labels(info)
    assert len(labels) == info.num_examples
    counts = collections.Counter(int(ids[0]) for ids in labels)
    assert [counts[i] for i in range(3)] == [12, 3, 1]
    with pytest.raises(ValueError, match="ArrayRecord"):
        balance.record_labels(read_info(imbalanced["tfrecord"]))
