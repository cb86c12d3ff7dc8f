"""SpecAugment: masks, seeds, compiled and in `fit`, on every backend."""

import keras
import numpy as np
import pytest
from conftest import compiled
from conftest import to_numpy
from layer_testing import dtype_policy
from layer_testing import run_layer_test

from keras_ast import ASTAudioConverter
from keras_ast.data.spec_augment import SpecAugment

BACKEND = keras.config.backend()


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
    with dtype_policy("mixed_bfloat16"):
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


def check_masks(masked, mask_value):
    """`masked` is `features()` with some bins set to `mask_value`."""
    kept = masked != np.float32(mask_value)
    assert not kept.all()
    np.testing.assert_array_equal(masked[kept], features()[kept])


def test_runs_compiled():
    layer = SpecAugment(freq_mask_param=20, time_mask_param=40, seed=4)
    x = features()
    fn = compiled(lambda v: layer(v, training=True))
    y = to_numpy(fn(keras.ops.convert_to_tensor(x)))
    widths = mask_widths(x, y)
    assert widths.max() > 0
    assert widths[:, 0].max() <= 39 and widths[:, 1].max() <= 19


def test_keras_contract(tmp_path):
    # Seeded: every copy draws the masks the first call of the layer draws.
    masked = run_layer_test(
        lambda: SpecAugment(24, 96, num_freq_masks=1, num_time_masks=2,
                            mask_value=0.5, seed=7, name="spec_augment"),
        features(), tmp_path, call_kwargs=dict(training=True),
        float32_layers=lambda layer: [layer], mixed_atol=0,
        check_compiled=lambda got: check_masks(got, 0.5),
    )
    check_masks(masked, 0.5)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        SpecAugment(freq_mask_param=-1)
    with pytest.raises(ValueError, match="batch, time, freq"):
        SpecAugment()(np.zeros((1, 2, 3, 4), "float32"), training=True)
