"""Patchout: fewer tokens in training only, under `fit` on every backend."""

import keras
import numpy as np
import pytest
from conftest import noise
from conftest import tiny_backbone
from conftest import to_numpy
from layer_testing import dtype_policy
from layer_testing import run_layer_test

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.models.patchout import Patchout

# `tiny_backbone`'s patch grid: 8 frequency rows x 4 time columns.
GRID = (8, 4)


def numbered_tokens(grid, batch=2, width=3):
    """Tokens whose value is their index in the sequence."""
    count = 2 + grid[0] * grid[1]
    index = np.arange(count, dtype="float32")[None, :, None]
    return np.broadcast_to(index, (batch, count, width)).copy()


def kept_indices(layer, grid):
    out = to_numpy(layer(numbered_tokens(grid), training=True))
    indices = out[0, :, 0].astype(int)
    assert (out == out[:1, :, :1]).all()  # one choice for the batch
    return indices


def test_drops_whole_columns_and_rows():
    layer = Patchout(GRID, time=1, frequency=3, seed=1)
    seen = set()
    for _ in range(4):
        indices = kept_indices(layer, GRID)
        assert list(indices[:2]) == [0, 1]
        patches = indices[2:] - 2
        assert len(patches) == (8 - 3) * (4 - 1)
        assert (np.diff(patches) > 0).all()
        rows, columns = np.unique(patches // 4), np.unique(patches % 4)
        assert len(rows) == 5 and len(columns) == 3
        # Every kept row with every kept column: whole rows and columns.
        expected = (rows[:, None] * 4 + columns[None, :]).ravel()
        np.testing.assert_array_equal(patches, expected)
        seen.add(tuple(patches))
    assert len(seen) > 1  # a new choice at each call


def test_random_share_of_the_remaining_patches():
    layer = Patchout(GRID, time=1, random=0.5, seed=2)
    indices = kept_indices(layer, GRID)
    assert len(indices) == 2 + round(8 * 3 * 0.5)
    assert list(indices[:2]) == [0, 1]
    assert (np.diff(indices) > 0).all()


def test_inference_passes_every_token():
    layer = Patchout(GRID, time=2, frequency=2)
    tokens = numbered_tokens(GRID)
    np.testing.assert_array_equal(to_numpy(layer(tokens)), tokens)
    np.testing.assert_array_equal(to_numpy(layer(tokens, training=False)),
                                  tokens)


def test_layer_keras_contract(tmp_path):
    run_layer_test(
        lambda: Patchout(GRID, time=1, frequency=2, random=0.25, seed=7,
                         name="patchout"),
        numbered_tokens(GRID), tmp_path, call_kwargs=dict(training=True),
        # The tokens are cast to the compute dtype (exact for indices).
        float32_outputs=False, mixed_layers=lambda layer: [layer],
        mixed_atol=0,
        # XLA on TensorFlow may draw other numbers than eager: a valid
        # choice is what the compiled program must give.
        check_compiled=check_choice,
    )


def check_choice(out):
    indices = out[0, :, 0].astype(int)
    assert list(indices[:2]) == [0, 1]
    assert len(indices) == 2 + round((8 - 2) * (4 - 1) * 0.75)
    assert (np.diff(indices) > 0).all()


def test_backbone_token_count_in_training_only():
    backbone = tiny_backbone(num_layers=2, patchout_time=1,
                             patchout_frequency=2)
    assert backbone.token_grid == GRID
    features = np.random.default_rng(0).standard_normal(
        (2, 64, 128)).astype("float32")
    trained = backbone(features, training=True)
    assert trained["sequence_output"].shape[1] == 2 + (8 - 2) * (4 - 1)
    inferred = backbone(features)
    assert inferred["sequence_output"].shape[1] == 2 + 8 * 4
    assert not np.allclose(to_numpy(trained["pooled_output"]),
                           to_numpy(inferred["pooled_output"]), atol=1e-4)
    pooled = backbone.pooled_output(features, training=True)
    assert not np.allclose(to_numpy(pooled),
                           to_numpy(inferred["pooled_output"]), atol=1e-4)

    # At inference: the outputs of the same weights without patchout.
    plain = tiny_backbone(num_layers=2)
    plain.set_weights(backbone.get_weights())
    for ours, theirs in ((backbone.predict(features, verbose=0),
                          plain.predict(features, verbose=0)),
                         (backbone(features), plain(features))):
        for key in ("sequence_output", "pooled_output"):
            np.testing.assert_array_equal(to_numpy(ours[key]),
                                          to_numpy(theirs[key]))


@pytest.mark.parametrize("kind", ["float32", "remat", "mixed_bfloat16"])
def test_fit_with_patchout(kind):
    keras.utils.set_random_seed(0)
    policy = "mixed_bfloat16" if kind == "mixed_bfloat16" else "float32"
    with dtype_policy(policy):
        backbone = tiny_backbone(patchout_time=1, patchout_frequency=2,
                                 patchout_random=0.2,
                                 remat=kind == "remat")
        classifier = ASTClassifier(
            backbone, 2, preprocessor=ASTAudioConverter(max_length=64))
    waves = np.stack([noise(0.5, seed=i) for i in range(4)])
    before = [to_numpy(w) for w in backbone.trainable_weights]
    state = to_numpy(backbone.patchout.seed_generator.state)
    history = classifier.fit(waves, np.array([0, 1, 0, 1]), batch_size=2,
                             epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [to_numpy(w) for w in backbone.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    # Patchout drew its choices inside `fit`.
    assert not np.array_equal(
        to_numpy(backbone.patchout.seed_generator.state), state)
    assert classifier.predict(waves, verbose=0).shape == (4, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(patchout_time=4), r"patchout_time must be in \[0, 4\).*8 x 4"),
    (dict(patchout_time=-1), r"patchout_time.*got -1"),
    (dict(patchout_frequency=8), r"patchout_frequency must be in \[0, 8\)"),
    (dict(patchout_random=1.0), r"patchout_random must be in \[0, 1\)"),
    (dict(patchout_random=-0.1), r"patchout_random.*got -0.1"),
])
def test_bad_values_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_backbone(**kwargs)


def test_config_round_trip(tmp_path):
    backbone = tiny_backbone(patchout_time=1, patchout_frequency=2,
                             patchout_random=0.25)
    config = backbone.get_config()
    assert (config["patchout_time"], config["patchout_frequency"],
            config["patchout_random"]) == (1, 2, 0.25)
    rebuilt = ASTBackbone.from_config(config)
    assert rebuilt.get_config() == config
    # A preset keeps the settings; `from_preset` takes them as overrides.
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    assert ASTBackbone.from_preset(preset).patchout_time == 1
    plain = ASTBackbone.from_preset(preset, patchout_time=0,
                                    patchout_frequency=0, patchout_random=0)
    assert plain.patchout is None
    features = np.zeros((1, 64, 128), "float32")
    np.testing.assert_array_equal(
        to_numpy(plain(features)["pooled_output"]),
        to_numpy(backbone(features)["pooled_output"]))
