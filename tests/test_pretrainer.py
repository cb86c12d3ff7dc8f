"""`ASTPretrainer`: masks, targets, loss, `fit`, saving; every backend."""

import math
import zlib

import keras
import numpy as np
import pytest
from conftest import to_numpy
from layer_testing import dtype_policy
from test_remat import value_and_gradients

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTPretrainer
from keras_ast.models.masking import PatchMasking
from keras_ast.models.pretrainer import patch_indices
from keras_ast.presets import io as preset_io

# 64 frames x 128 bins in 16 x 16 patches: an 8 x 4 grid (frequency x time).
TINY = dict(hidden_dim=32, num_layers=2, num_heads=4, intermediate_dim=64,
            max_length=64, frequency_stride=16, time_stride=16)
GRID = (8, 4)


def backbone(**overrides):
    return ASTBackbone(**dict(TINY, **overrides))


def masks_of(layer, batch=4):
    return to_numpy(layer(np.zeros((batch, 3), "float32")))


def tones(count, seed, length=64, bins=128):
    """Normalised-looking features of clips that share a steady spectral
    envelope (learnable from a patch's position alone) and each hold one
    steady tone, a band of 3 mel bins at a random height (learnable from
    the visible patches of its frequency row), on a noisy floor."""
    rng = np.random.default_rng(seed)
    envelope = (0.6 * np.sin(np.arange(bins) / 3.0)
                + 0.3 * np.cos(np.arange(length)[:, None] / 2.0))
    features = envelope + rng.normal(-0.5, 0.1, (count, length, bins))
    for clip, height in enumerate(rng.integers(8, bins - 8, count)):
        features[clip, :, height:height + 3] += 1.5
    return features.astype("float32")


# === Masks ===


def test_random_masks_count_and_differ():
    layer = PatchMasking(GRID, mask_ratio=0.75, seed=3)
    first, second = masks_of(layer), masks_of(layer)
    assert first.shape == (4, 32) and first.dtype == bool
    assert (first.sum(axis=1) == 24).all()
    assert len({row.tobytes() for row in first}) > 1  # per example
    assert not (first == second).all()  # the generator advances


@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_time_blocks_mask_whole_columns_in_blocks(block_size):
    grid = (3, 12)
    layer = PatchMasking(grid, mask_ratio=0.5, masking="time_blocks",
                         block_size=block_size, seed=1)
    masks = np.concatenate([masks_of(layer, 8) for _ in range(3)])
    assert (masks.sum(axis=1) == 18).all()
    seen = set()
    for mask in masks.reshape(-1, *grid):
        columns = mask.sum(axis=0)
        # Whole columns, but for at most one partly masked column.
        assert ((columns == 0) | (columns == 3)).sum() >= 11
        # Some offset cuts the columns into blocks of which at most one
        # is masked in part.
        masked = columns > 0
        assert any(
            sum(0 < masked[block].sum() < len(masked[block])
                for block in np.split(np.arange(12), range(
                    block_size - shift, 12, block_size))) <= 1
            for shift in range(block_size))
        seen.add(masked.tobytes())
    assert len(seen) > 1


def test_special_tokens_are_never_masked():
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5, seed=0)
    out = pretrainer.reconstruct(tones(2, 0))
    # The mask covers the F' * T' patch tokens only.
    assert out["mask"].shape == (2, 32)
    assert (out["masked_indices"] >= 0).all()
    for mask, masked in zip(out["mask"], out["masked_indices"]):
        np.testing.assert_array_equal(np.flatnonzero(mask), masked)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mask_ratio=0.0), "mask_ratio"),
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(mask_ratio=True), "mask_ratio"),
    (dict(mask_ratio=0.001), "mask_ratio"),
    (dict(masking="cluster"), "masking"),
    (dict(masking="time_blocks", block_size=0), "block_size"),
    (dict(masking="time_blocks", block_size=5), "block_size"),
    (dict(decoder_heads=3), "decoder_heads"),
    (dict(decoder_layers=0), "decoder_layers"),
    (dict(contrastive_weight=-1.0), "contrastive_weight"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ASTPretrainer(backbone(), **kwargs)


def test_bad_explicit_mask_is_refused():
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5)
    with pytest.raises(ValueError, match="exactly 16"):
        pretrainer.reconstruct(tones(1, 0), mask=np.ones((1, 32), bool))
    with pytest.raises(ValueError, match="shape"):
        pretrainer.reconstruct(tones(1, 0), mask=np.ones((1, 31), bool))


# === Targets and loss ===


def numpy_targets(features, geometry, normalise=True):
    """The normalised (or raw) patches, cut with numpy slices."""
    size = geometry["patch_size"]
    frequencies = (128 - size) // geometry["frequency_stride"] + 1
    times = (features.shape[1] - size) // geometry["time_stride"] + 1
    patches = []
    for f in range(frequencies):
        for t in range(times):
            frame = t * geometry["time_stride"]
            mel = f * geometry["frequency_stride"]
            # Pixel (i, j): bin mel + i, frame + j.
            patches.append(features[:, frame:frame + size,
                                    mel:mel + size].transpose(0, 2, 1))
    patches = np.stack(patches, 1).reshape(len(features), len(patches), -1)
    if not normalise:
        return patches
    mean = patches.mean(-1, keepdims=True)
    return (patches - mean) / np.sqrt(patches.var(-1, keepdims=True) + 1e-6)


def test_targets_are_the_normalised_patches_of_the_grid():
    # Strides below the patch size: overlapping patches, a 12 x 5 grid.
    model = backbone(frequency_stride=10, time_stride=12)
    pretrainer = ASTPretrainer(model)
    features = np.random.default_rng(0).normal(
        size=(2, 64, 128)).astype("float32")
    features[1, :16, :16] = 3.0  # a constant patch: all zeros
    expected = numpy_targets(features, dict(patch_size=16,
                                            frequency_stride=10,
                                            time_stride=12))
    assert patch_indices(model).shape == (60, 256)
    got = to_numpy(pretrainer.target_patches(features))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_array_equal(got[1, 0], 0.0)


def test_loss_is_the_error_on_the_masked_patches():
    pretrainer = ASTPretrainer(backbone(frequency_stride=10),
                               mask_ratio=0.6, seed=2)
    features = tones(3, 1)
    rng = np.random.default_rng(0)
    count = round(0.6 * 12 * 4)
    mask = np.zeros((3, 48), bool)
    for row in mask:
        row[rng.choice(48, count, replace=False)] = True
    out = pretrainer.reconstruct(features, mask=mask)
    np.testing.assert_array_equal(out["mask"], mask)
    targets = numpy_targets(features, dict(patch_size=16,
                                           frequency_stride=10,
                                           time_stride=16))
    expected_targets = np.stack([t[m] for t, m in zip(targets, mask)])
    np.testing.assert_allclose(out["targets"], expected_targets, atol=1e-4)
    assert out["predictions"].shape == expected_targets.shape
    np.testing.assert_allclose(
        out["loss"], np.mean((out["predictions"] - expected_targets) ** 2),
        rtol=1e-5)
    # The same mask gives the same loss (dropout is off).
    again = pretrainer.reconstruct(features, mask=mask)
    np.testing.assert_allclose(again["loss"], out["loss"], rtol=1e-6)


def test_reconstruction_keeps_the_visible_values():
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5, seed=0)
    features = tones(2, 3)
    out = pretrainer.reconstruct(features)
    grid = out["mask"].reshape(2, *GRID)  # (F', T') -> bins x frames
    covered = np.kron(grid, np.ones((16, 16), bool)).transpose(0, 2, 1)
    np.testing.assert_array_equal(out["reconstruction"][~covered],
                                  features[~covered])
    assert not np.allclose(out["reconstruction"][covered],
                           features[covered])


def test_masked_inputs_do_not_reach_the_encoder():
    """A masked patch's input reaches neither encoder: the visible-only
    one drops it, the mask-token one replaces it; only the targets move."""
    for visible_only in (True, False):
        pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5, seed=0,
                                   visible_only=visible_only)
        features = tones(1, 4)
        mask = np.zeros((1, 32), bool)
        mask[0, :16] = True  # the lower four frequency rows
        changed = features.copy()
        changed[0, :, :48] += np.random.default_rng(0).normal(
            size=(64, 48)).astype("float32")  # inside masked patches only
        a = pretrainer.reconstruct(features, mask=mask)
        b = pretrainer.reconstruct(changed, mask=mask)
        np.testing.assert_allclose(a["predictions"], b["predictions"],
                                   atol=1e-5)
        assert not np.allclose(a["targets"], b["targets"])


def test_gradients_reach_encoder_and_decoder():
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5, seed=0,
                               visible_only=False)
    features = tones(2, 5)
    mask = to_numpy(pretrainer.patch_masking(features))

    def loss():
        return pretrainer.reconstruction_loss(
            pretrainer(features, training=True, patch_mask=mask))

    value, grads = value_and_gradients(pretrainer, loss)
    assert np.isfinite(value)
    names = [v.path for v in pretrainer.trainable_variables]
    for name, grad in zip(names, grads):
        assert np.isfinite(grad).all(), name
    nonzero = {name.split("/")[0] for name, grad in zip(names, grads)
               if np.abs(grad).max() > 0}
    for part in ("decoder_embed", "decoder_layer_0", "decoder_prediction"):
        assert part in nonzero, nonzero
    assert any("encoder_layer_1" in name and np.abs(grad).max() > 0
               for name, grad in zip(names, grads))
    assert any("encoder_mask_token" in name and np.abs(grad).max() > 0
               for name, grad in zip(names, grads))


def test_contrastive_term_is_the_infonce_of_the_masked_patches():
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5, seed=0,
                               visible_only=False, contrastive_weight=0.5)
    features = tones(2, 6)
    out = pretrainer.reconstruct(features)
    logits = out["contrastive_logits"].astype("float64")
    assert logits.shape == (2, 16, 16)
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    infonce = -np.mean(np.einsum("bii->bi", log_p))
    np.testing.assert_allclose(out["contrastive_loss"], infonce, rtol=1e-4)
    mse = np.mean((out["predictions"] - out["targets"]) ** 2)
    np.testing.assert_allclose(out["reconstruction_loss"], mse, rtol=1e-5)
    np.testing.assert_allclose(out["loss"], mse + 0.5 * infonce, rtol=1e-5)
    # compute_loss, what fit minimises, holds both terms.
    mask = out["mask"]

    def loss():
        return pretrainer.compute_loss(y_pred=pretrainer(
            features, training=True, patch_mask=mask))

    value, grads = value_and_gradients(pretrainer, loss)
    np.testing.assert_allclose(value, out["loss"], rtol=1e-4)
    head = [g for v, g in zip(pretrainer.trainable_variables, grads)
            if "contrastive_head" in v.path]
    assert head and all(np.abs(g).max() > 0 for g in head)


# === Training ===


@pytest.mark.parametrize("masking, visible_only", [
    ("random", True), ("time_blocks", False)])
def test_fit_learns_below_the_patch_mean_baseline(masking, visible_only):
    keras.utils.set_random_seed(0)
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5, masking=masking,
                               block_size=1, visible_only=visible_only,
                               seed=0)
    pretrainer.compile(learning_rate=3e-3)
    held_out = tones(16, 99)
    mask = to_numpy(pretrainer.patch_masking(held_out))
    before = pretrainer.reconstruct(held_out, mask=mask)["loss"]
    # (x, y) batches: the labels are ignored.
    data = (tones(64, 1), np.zeros(64))
    history = pretrainer.fit(*data, epochs=12, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    after = pretrainer.reconstruct(held_out, mask=mask)["loss"]
    # Predicting each patch's mean (zero) scores ~1.0 on these clips.
    baseline = np.mean(pretrainer.reconstruct(held_out, mask=mask)[
        "targets"] ** 2)
    assert after < before and after < 0.9 * baseline, (before, after,
                                                      baseline)
    assert pretrainer.evaluate(held_out, verbose=0) < baseline


def test_fit_with_remat_and_mixed_precision(monkeypatch):
    with dtype_policy("float32"):
        model = backbone(remat=True, dtype="mixed_bfloat16")
    pretrainer = ASTPretrainer(model, mask_ratio=0.75, masking="time_blocks",
                               block_size=2, seed=0)
    assert pretrainer.dtype_policy.name == "mixed_bfloat16"
    assert pretrainer.decoder_blocks[0].compute_dtype == "bfloat16"
    wrapped = []
    real_remat = keras.remat
    monkeypatch.setattr(keras, "remat",
                        lambda f: wrapped.append(f) or real_remat(f))
    history = pretrainer.fit(tones(8, 0), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # Every encoder and decoder layer went through keras.remat.
    assert len(wrapped) >= 2 + 2
    out = pretrainer(tones(2, 1), training=True)
    loss = pretrainer.reconstruction_loss(out)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert keras.backend.standardize_dtype(
        out["predictions"].dtype) == "float32"


def test_waveform_inputs_through_the_preprocessor():
    pretrainer = ASTPretrainer(
        backbone(), preprocessor=ASTAudioConverter(max_length=64), seed=0)
    waveforms = np.random.default_rng(0).normal(
        0, 0.1, (2, 8000)).astype("float32")
    out = pretrainer.reconstruct(waveforms)
    padded = pretrainer.reconstruct(
        {"waveforms": np.pad(waveforms, ((0, 0), (0, 800))),
         "lengths": np.array([8000, 8000])}, mask=out["mask"])
    np.testing.assert_allclose(padded["features"], out["features"],
                               atol=1e-4)
    np.testing.assert_allclose(padded["loss"], out["loss"], rtol=1e-4)
    with pytest.raises(ValueError, match="preprocessor"):
        ASTPretrainer(backbone(max_length=48),
                      preprocessor=ASTAudioConverter(max_length=64))


# === Saving ===


def test_config_round_trip_shares_nothing_but_the_settings():
    pretrainer = ASTPretrainer(backbone(), mask_ratio=0.5,
                               masking="time_blocks", block_size=2,
                               visible_only=False, decoder_dim=24,
                               decoder_layers=1, decoder_heads=2,
                               contrastive_weight=0.25, seed=4)
    config = pretrainer.get_config()
    restored = ASTPretrainer.from_config(config)
    assert restored.get_config() == config
    assert restored.decoder_dim == 24 and not restored.visible_only
    restored.set_weights(pretrainer.get_weights())
    mask = pretrainer.reconstruct(tones(2, 0))["mask"]
    np.testing.assert_allclose(
        restored.reconstruct(tones(2, 0), mask=mask)["loss"],
        pretrainer.reconstruct(tones(2, 0), mask=mask)["loss"], rtol=1e-5)


def test_save_to_preset_writes_the_backbone(tmp_path):
    pretrainer = ASTPretrainer(backbone(), seed=0)
    pretrainer.compile(learning_rate=1e-2)
    before = [to_numpy(v) for v in pretrainer.backbone.weights]
    pretrainer.fit(tones(4, 0), epochs=1, batch_size=4, verbose=0)
    # fit trained the backbone's own weights.
    assert not all(np.allclose(a, to_numpy(b)) for a, b in
                   zip(before, pretrainer.backbone.weights))
    pretrainer.save_to_preset(tmp_path / "preset")
    loaded = ASTBackbone.from_preset(str(tmp_path / "preset"))
    # A head on a self-supervised backbone pools the patch tokens.
    assert preset_io.load_preset(
        str(tmp_path / "preset")).default_pooling() == "mean"
    features = tones(2, 1)
    np.testing.assert_allclose(
        to_numpy(loaded(features)["sequence_output"]),
        to_numpy(pretrainer.backbone(features)["sequence_output"]),
        atol=1e-5)


# === Agreement across backends: one numpy reference ===
#
# Each backend's loss and gradient are checked against the same float64
# numpy forward pass, on weights set from numpy (not the backend's
# initialisers), fixed features and a fixed mask: backends that all match
# it agree with each other.


ERF = np.vectorize(math.erf)


def numpy_weights(model):
    """Every weight of `model` from a generator seeded by its path."""
    values = {}
    for variable in model.weights:
        rng = np.random.default_rng(zlib.crc32(variable.path.encode()))
        value = rng.normal(0.0, 0.2, variable.shape)
        if variable.path.endswith("gamma"):
            value += 1.0
        values[variable.path] = value
        variable.assign(value.astype("float32"))
    return values


def _norm(x, layer, w, eps):
    mean = x.mean(-1, keepdims=True)
    x = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return x * w[layer.gamma.path] + w[layer.beta.path]


def _dense(x, layer, w):
    return x @ w[layer.kernel.path] + w[layer.bias.path]


def _block(x, layer, w):
    """`ASTEncoderLayer` in numpy."""
    eps = layer.layer_norm_epsilon
    heads, width = layer.num_heads, layer.head_dim

    def split(y):
        return y.reshape(*y.shape[:2], heads, width).transpose(0, 2, 1, 3)

    h = _norm(x, layer.norm_before, w, eps)
    q, k, v = (split(_dense(h, dense, w))
               for dense in (layer.query, layer.key, layer.value))
    logits = q @ k.transpose(0, 1, 3, 2) * width ** -0.5
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    context = (probabilities @ v).transpose(0, 2, 1, 3).reshape(x.shape)
    x = x + _dense(context, layer.attention_output, w)
    h = _dense(_norm(x, layer.norm_after, w, eps), layer.intermediate, w)
    h = 0.5 * h * (1.0 + ERF(h / np.sqrt(2.0)))
    return x + _dense(h, layer.output_dense, w)


def numpy_loss(pretrainer, w, features, mask):
    """The pretrainer's loss, written again in float64 numpy."""
    backbone = pretrainer.backbone
    embedding, eps = backbone.embedding, backbone.layer_norm_epsilon
    batch, size = len(features), backbone.patch_size
    geometry = dict(patch_size=size,
                    frequency_stride=backbone.frequency_stride,
                    time_stride=backbone.time_stride)
    # Raw patches: the normalised ones of `numpy_targets` undone.
    raw = numpy_targets(features.astype("float64"), geometry, normalise=False)
    kernel = w[embedding.projection.kernel.path].reshape(size * size, -1)
    patches = raw @ kernel + w[embedding.projection.bias.path]
    special = np.concatenate(
        [np.broadcast_to(w[embedding.cls_token.path],
                         (batch, 1, embedding.hidden_dim)),
         np.broadcast_to(w[embedding.distillation_token.path],
                         (batch, 1, embedding.hidden_dim))], axis=1)
    tokens = (np.concatenate([special, patches], 1)
              + w[embedding.position_embedding.path])
    masked = np.stack([np.flatnonzero(row) for row in mask])
    visible = np.stack([np.flatnonzero(~row) for row in mask])
    if pretrainer.visible_only:
        kept = np.stack([t[2:][v] for t, v in zip(tokens, visible)])
    else:
        fill = (w[pretrainer.encoder_mask_token.path]
                + w[embedding.position_embedding.path][:, 2:])
        kept = np.where(mask[..., None], fill, tokens[:, 2:])
    x = np.concatenate([tokens[:, :2], kept], 1)
    for layer in backbone.encoder_layers:
        x = _block(x, layer, w)
    x = _dense(_norm(x, backbone.final_norm, w, eps),
               pretrainer.decoder_embed, w)
    token = w[pretrainer.decoder_mask_token.path][0, 0]
    grid = np.empty((batch, mask.shape[1], x.shape[-1]))
    for row in range(batch):
        grid[row] = token
        if pretrainer.visible_only:
            grid[row, visible[row]] = x[row, 2:]
        else:
            grid[row, ~mask[row]] = x[row, 2:][~mask[row]]
    x = (np.concatenate([x[:, :2], grid], 1)
         + w[pretrainer.decoder_position_embedding.path])
    for layer in pretrainer.decoder_blocks:
        x = _block(x, layer, w)
    x = np.stack([t[2:][m] for t, m in zip(x, masked)])
    predicted = _dense(_norm(x, pretrainer.decoder_norm, w, eps),
                       pretrainer.decoder_prediction, w)
    targets = numpy_targets(features.astype("float64"), geometry)
    targets = np.stack([t[m] for t, m in zip(targets, masked)])
    return np.mean((predicted - targets) ** 2)


@pytest.mark.parametrize("visible_only", [True, False])
def test_loss_and_gradient_match_a_numpy_reference(visible_only):
    pretrainer = ASTPretrainer(
        backbone(frequency_stride=12, layer_norm_epsilon=1e-6),
        mask_ratio=0.6, visible_only=visible_only, decoder_layers=1)
    w = numpy_weights(pretrainer)
    features = tones(2, 7)
    rng = np.random.default_rng(1)
    mask = np.zeros((2, pretrainer.patch_masking.num_patches), bool)
    for row in mask:
        row[rng.choice(len(row), pretrainer.num_masked, replace=False)] = True
    expected = numpy_loss(pretrainer, w, features, mask)
    got = pretrainer.reconstruct(features, mask=mask)["loss"]
    np.testing.assert_allclose(got, expected, rtol=2e-4)

    # The gradient along a random direction against a central difference
    # of the numpy loss.
    def loss():
        return pretrainer.reconstruction_loss(
            pretrainer(features, training=True, patch_mask=mask))

    value, grads = value_and_gradients(pretrainer, loss)
    np.testing.assert_allclose(value, expected, rtol=2e-4)
    variables = pretrainer.trainable_variables
    direction = {v.path: rng.normal(size=v.shape) for v in variables}
    step = 1e-4
    shifted = [
        numpy_loss(pretrainer, {**w, **{
            path: w[path] + sign * step * d
            for path, d in direction.items()}}, features, mask)
        for sign in (1.0, -1.0)]
    numeric = (shifted[0] - shifted[1]) / (2 * step)
    analytic = sum(np.sum(g * direction[v.path])
                   for v, g in zip(variables, grads))
    assert abs(numeric) > 1e-3
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3)
