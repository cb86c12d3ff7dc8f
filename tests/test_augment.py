"""SpecAugment, mixup, noise, time shift and balanced sampling weights."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_ast import ASTAudioConverter
from keras_ast.data.augment import SpecAugment
from keras_ast.data.augment import add_noise
from keras_ast.data.augment import balanced_sample_weights
from keras_ast.data.augment import balanced_sampling_probabilities
from keras_ast.data.augment import mixup
from keras_ast.data.augment import one_hot
from keras_ast.data.augment import time_shift

BACKEND = keras.config.backend()


def compiled(fn):
    """`fn` compiled the way each backend runs it inside `fit`/`predict`."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn


def features(batch=8, time=100, freq=64, seed=0):
    # Values far from 0, so that exact zeros are masked bins.
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, time, freq)) + 10).astype("float32")


def bands(masked_lines):
    """(start, width) of the masked lines, checking they form one band."""
    where = np.flatnonzero(masked_lines)
    if where.size == 0:
        return 0, 0
    assert np.array_equal(where, np.arange(where[0], where[-1] + 1)), where
    return int(where[0]), int(where.size)


def mask_widths(inputs, outputs, mask_value=0.0):
    """Per example (time width, freq width) of single-band masks."""
    widths = []
    for x, y in zip(inputs, outputs):
        masked = y == mask_value
        rows = masked.all(axis=1)  # masked time frames
        cols = masked.all(axis=0)  # masked frequency bins
        # Every masked bin lies in a masked frame or bin; the rest is kept.
        np.testing.assert_array_equal(masked, rows[:, None] | cols[None, :])
        np.testing.assert_array_equal(y[~masked], x[~masked])
        widths.append((bands(rows)[1], bands(cols)[1]))
    return np.array(widths)


def test_identity_unless_training():
    layer = SpecAugment(freq_mask_param=20, time_mask_param=40, seed=0)
    x = features()
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)


def test_masks_within_bounds():
    layer = SpecAugment(freq_mask_param=20, time_mask_param=40, seed=0)
    x = features()
    widths = []
    for _ in range(8):  # 64 examples; one shape keeps JAX compiling once
        y = to_numpy(layer(x, training=True))
        assert y.shape == x.shape and y.dtype == np.float32
        widths.append(mask_widths(x, y))
    widths = np.concatenate(widths)
    # torchaudio semantics: width = floor(u * param) <= param - 1.
    assert widths[:, 0].max() <= 39 and widths[:, 1].max() <= 19
    assert widths[:, 0].max() >= 20 and widths[:, 1].max() >= 10
    # Uniform widths: the means are near param / 2.
    assert 12 < widths[:, 0].mean() < 28
    assert 5 < widths[:, 1].mean() < 15


def test_several_masks_and_param_above_axis_size():
    layer = SpecAugment(freq_mask_param=0, time_mask_param=500,
                        num_time_masks=2, seed=1)
    x = features()
    y = to_numpy(layer(x, training=True))
    masked = y == 0
    # No frequency masks; time masks never leave the axis.
    rows = masked.all(axis=2)
    np.testing.assert_array_equal(masked, np.broadcast_to(rows[:, :, None],
                                                          masked.shape))
    assert rows.sum(axis=1).max() > 60  # two wide masks mask a lot


def test_masks_differ_per_example_and_unbatched_input():
    layer = SpecAugment(freq_mask_param=30, time_mask_param=60, seed=2)
    x = np.repeat(features(batch=1), 8, axis=0)
    y = to_numpy(layer(x, training=True))
    patterns = {(y[i] == 0).tobytes() for i in range(8)}
    assert len(patterns) > 4
    single = to_numpy(layer(x[0], training=True))
    assert single.shape == x[0].shape and (single == 0).any()


def test_seeded_is_reproducible_and_calls_differ():
    x = features()
    first = SpecAugment(30, 60, seed=3)
    second = SpecAugment(30, 60, seed=3)
    a = to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, to_numpy(second(x, training=True)))
    assert not np.array_equal(a, to_numpy(first(x, training=True)))


def test_mask_value_and_from_converter():
    converter = ASTAudioConverter(max_length=128)
    layer = SpecAugment.from_converter(converter, 48, 48, seed=0)
    # The authors mask with 0 before normalising.
    expected = (0.0 - converter.mean) / (2 * converter.std)
    assert layer.mask_value == pytest.approx(expected)
    assert layer.mask_value == pytest.approx(0.467, abs=1e-3)
    x = features()
    y = to_numpy(layer(x, training=True))
    mask_widths(x, y, mask_value=np.float32(layer.mask_value))
    assert (y == np.float32(layer.mask_value)).any()


def test_runs_compiled():
    layer = SpecAugment(freq_mask_param=20, time_mask_param=40, seed=4)
    x = features()
    fn = compiled(lambda v: layer(v, training=True))
    y = to_numpy(fn(keras.ops.convert_to_tensor(x)))
    widths = mask_widths(x, y)
    assert widths.max() > 0
    assert widths[:, 0].max() <= 39 and widths[:, 1].max() <= 19


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's stateless path")
def test_jax_stateless_call_advances_the_seed():
    import jax

    layer = SpecAugment(freq_mask_param=20, time_mask_param=40, seed=5)
    x = features()

    @jax.jit
    def step(state, v):
        return layer.stateless_call([], state, v, training=True)

    state = [v.value for v in layer.non_trainable_variables]
    assert state, "the seed generator state is a non-trainable variable"
    y1, state = step(state, x)
    y2, state = step(state, x)
    mask_widths(x, np.asarray(y1))
    assert not np.array_equal(np.asarray(y1), np.asarray(y2))


def test_in_fit_and_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = SpecAugment(freq_mask_param=4, time_mask_param=4, seed=6)
        assert layer.compute_dtype == "float32"
        model = keras.Sequential([
            keras.Input((16, 8)),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ])
        model.compile(optimizer="sgd", loss="mse")
        x = features(time=16, freq=8)
        model.fit(x, np.zeros((8, 2), "float32"), batch_size=8, epochs=1,
                  verbose=0)
        y = layer(keras.ops.cast(x, "bfloat16"), training=True)
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_config_round_trip():
    layer = SpecAugment(24, 96, num_freq_masks=1, num_time_masks=2,
                        mask_value=0.5, seed=7, name="spec_augment")
    config = layer.get_config()
    restored = SpecAugment.from_config(config)
    for key in ("freq_mask_param", "time_mask_param", "num_freq_masks",
                "num_time_masks", "mask_value", "seed", "name"):
        assert getattr(restored, key) == getattr(layer, key)
    assert restored.dtype_policy.name == "float32"
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert isinstance(again, SpecAugment)
    assert again.get_config() == config
    x = features()
    np.testing.assert_array_equal(
        to_numpy(layer(x, training=True)),
        to_numpy(restored(x, training=True)),
    )


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        SpecAugment(freq_mask_param=-1)
    with pytest.raises(ValueError, match="batch, time, freq"):
        SpecAugment()(np.zeros((1, 2, 3, 4), "float32"), training=True)


# Waveform augmentations.


def recover_mixup(waves, mixed_waves, mixed_labels):
    """Lambdas and partners from one-hot labels `i -> class i`."""
    lams, partners = [], []
    for i, row in enumerate(mixed_labels):
        others = np.delete(np.arange(len(row)), i)
        partner = others[np.argmax(row[others])]
        if row[partner] == 0:  # mixed with itself
            partner = i
            np.testing.assert_allclose(row[i], 1.0, atol=1e-6)
        lam = row[i]
        np.testing.assert_allclose(row.sum(), 1.0, atol=1e-5)
        expected = lam * waves[i] + (1 - lam) * waves[partner]
        np.testing.assert_allclose(mixed_waves[i], expected, atol=1e-5)
        lams.append(lam if partner != i else np.nan)
        partners.append(partner)
    return np.array(lams), np.array(partners)


MIX_BATCH = 256  # one batch size: JAX compiles each shape once


def test_mixup_same_lambda_for_waves_and_labels():
    batch = MIX_BATCH
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((batch, 8)).astype("float32")
    labels = one_hot(np.arange(batch), batch)
    mixed_waves, mixed_labels = mixup(waves, labels, alpha=10.0, seed=1)
    assert tuple(mixed_waves.shape) == waves.shape
    lams, partners = recover_mixup(waves, to_numpy(mixed_waves),
                                   to_numpy(mixed_labels))
    # The partners are a permutation of the batch.
    assert sorted(partners.tolist()) == list(range(batch))
    lams = lams[~np.isnan(lams)]
    assert len(lams) > batch * 0.9
    # Beta(10, 10): mean 0.5, standard deviation 0.109.
    assert abs(lams.mean() - 0.5) < 0.03
    assert 0.08 < lams.std() < 0.14
    assert 0 < lams.min() and lams.max() < 1


def test_mixup_multi_label_probability_and_seeds():
    rng = np.random.default_rng(5)
    labels = (rng.random((MIX_BATCH, 6)) < 0.3).astype("float32")
    waves = rng.standard_normal((MIX_BATCH, 8)).astype("float32")
    kept_waves, kept_labels = mixup(waves, labels, probability=0.0, seed=0)
    np.testing.assert_allclose(to_numpy(kept_waves), waves)
    np.testing.assert_allclose(to_numpy(kept_labels), labels)
    a = mixup(waves, labels, seed=2)
    b = mixup(waves, labels, seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(to_numpy(x), to_numpy(y))
    # Each mixed multi-hot row is a convex combination of two label rows,
    # with the lambda of its waveform: the waves tell the partner.
    mixed_waves, mixed = (to_numpy(v) for v in a)
    assert mixed.min() >= 0 and mixed.max() <= 1 + 1e-6
    for i in range(0, MIX_BATCH, 16):
        # Solve mixed_wave = lam * waves[i] + (1 - lam) * waves[j] for j.
        for j in range(MIX_BATCH):
            diff = waves[i] - waves[j]
            if not diff.any():
                continue
            lam = np.dot(mixed_waves[i] - waves[j], diff) / np.dot(diff, diff)
            if np.allclose(lam * diff + waves[j], mixed_waves[i], atol=1e-5):
                break
        else:
            lam, j = 1.0, i
        np.testing.assert_allclose(
            mixed[i], lam * labels[i] + (1 - lam) * labels[j], atol=1e-5)
    generator = keras.random.SeedGenerator(3)
    first = to_numpy(mixup(waves, labels, seed=generator)[0])
    second = to_numpy(mixup(waves, labels, seed=generator)[0])
    assert not np.array_equal(first, second)


def test_mixup_probability_mixes_a_fraction():
    batch = MIX_BATCH
    waves = np.arange(batch, dtype="float32")[:, None] * np.ones((1, 4),
                                                                   "float32")
    labels = one_hot(np.arange(batch), batch)
    mixed, _ = mixup(waves, labels, probability=0.5, seed=4)
    changed = np.abs(to_numpy(mixed) - waves).max(axis=1) > 1e-6
    assert 0.35 < changed.mean() < 0.65


def test_mixup_rejects_integer_labels():
    waves = np.zeros((2, 4), "float32")
    with pytest.raises(ValueError, match="one_hot"):
        mixup(waves, np.array([0, 1]))
    with pytest.raises(ValueError, match="one_hot"):
        mixup(waves, np.array([[1, 0], [0, 1]]))


def snr_db(clean, noisy):
    noise = noisy.astype("float64") - clean
    return 10 * np.log10((clean.astype("float64") ** 2).mean(axis=1)
                         / (noise ** 2).mean(axis=1))


def test_add_noise_snr_within_range():
    rng = np.random.default_rng(1)
    scales = np.geomspace(1e-3, 1.0, MIX_BATCH)[:, None]
    waves = (rng.standard_normal((MIX_BATCH, 4000)) * scales).astype(
        "float32")
    noisy = to_numpy(add_noise(waves, snr_db_range=(10, 40), seed=0))
    snr = snr_db(waves, noisy)
    assert snr.min() > 9.7 and snr.max() < 40.3
    assert snr.max() - snr.min() > 10  # drawn per example
    fixed = snr_db(waves, to_numpy(add_noise(waves, (20, 20), seed=1)))
    np.testing.assert_allclose(fixed, 20.0, atol=0.3)
    assert abs(fixed.mean() - 20.0) < 0.05
    silent = to_numpy(add_noise(np.zeros_like(waves), seed=2))
    np.testing.assert_array_equal(silent, 0.0)


def expected_shift(row, shift):
    out = np.zeros_like(row)
    if shift >= 0:
        out[shift:] = row[: len(row) - shift]
    else:
        out[:shift] = row[-shift:]
    return out


def test_time_shift_zero_filled():
    batch, samples, max_shift = MIX_BATCH, 50, 10
    waves = np.tile(np.arange(1, samples + 1, dtype="float32"), (batch, 1))
    shifted = to_numpy(time_shift(waves, max_shift=max_shift, seed=0))
    shifts = []
    for row, out in zip(waves, shifted):
        # The first sample kept tells the shift: value v at index v-1+s.
        first = np.flatnonzero(out)[0]
        shift = int(first - (out[first] - 1))
        assert -max_shift <= shift <= max_shift
        np.testing.assert_array_equal(out, expected_shift(row, shift))
        shifts.append(shift)
    assert len(set(shifts)) > 10 and min(shifts) < 0 < max(shifts)
    np.testing.assert_array_equal(
        to_numpy(time_shift(waves, max_shift=0, seed=0)), waves)


def test_waveform_functions_compiled_match_eager_with_int_seed():
    rng = np.random.default_rng(2)
    waves = rng.standard_normal((MIX_BATCH, 50)).astype("float32")
    labels = one_hot(np.arange(MIX_BATCH) % 3, 3)

    def augment(w, y):
        w, y = mixup(w, y, seed=1)
        w = add_noise(w, seed=2)
        return time_shift(w, 10, seed=3), y

    eager = augment(waves, labels)
    got = compiled(augment)(keras.ops.convert_to_tensor(waves),
                            keras.ops.convert_to_tensor(labels))
    for x, y in zip(got, eager):
        np.testing.assert_allclose(to_numpy(x), to_numpy(y), atol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.data needs TF ops")
def test_in_tf_data_pipeline():
    import tensorflow as tf

    waves = np.random.default_rng(3).standard_normal((8, 200))
    labels = np.eye(4, dtype="float32")[np.arange(8) % 4]
    generator = keras.random.SeedGenerator(0)

    def augment(w, y):
        w, y = mixup(w, y, seed=generator)
        return time_shift(add_noise(w, seed=generator), 20,
                          seed=generator), y

    dataset = (tf.data.Dataset.from_tensor_slices((waves.astype("float32"),
                                                   labels))
               .batch(4).map(augment))
    batches = list(dataset)
    assert len(batches) == 2
    assert tuple(batches[0][0].shape) == (4, 200)
    np.testing.assert_allclose(batches[0][1].numpy().sum(axis=1), 1.0,
                               atol=1e-6)


# Balanced sampling.


def test_balanced_weights_hand_computed():
    label_lists = [[0, 1], [1], [2], [1, 2], []]
    # Counts: class 0 -> 1, class 1 -> 3, class 2 -> 2, class 3 -> 0.
    w = [1000 / 1.01, 1000 / 3.01, 1000 / 2.01]
    expected = [w[0] + w[1], w[1], w[2], w[1] + w[2], 0.0]
    got = balanced_sample_weights(label_lists, num_classes=4)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    probabilities = balanced_sampling_probabilities(label_lists, 4)
    np.testing.assert_allclose(probabilities, np.array(expected)
                               / sum(expected), rtol=1e-12)
    assert probabilities.sum() == pytest.approx(1.0)


def test_balanced_weights_single_label_and_errors():
    got = balanced_sample_weights(np.array([0, 0, 1]), num_classes=2)
    np.testing.assert_allclose(got, [1000 / 2.01, 1000 / 2.01, 1000 / 1.01])
    # A label repeated within a clip counts once.
    np.testing.assert_allclose(
        balanced_sample_weights([[0, 0]], 1), [1000 / 1.01])
    with pytest.raises(ValueError, match="outside"):
        balanced_sample_weights([[0, 5]], num_classes=3)
    with pytest.raises(ValueError, match="nothing to sample"):
        balanced_sampling_probabilities([[], []], num_classes=3)
