"""`keras_ast.data.mixup`: the one mixup, numpy, used by both pipelines."""

import numpy as np
import pytest

from keras_ast.data.mixing import mixup

BATCH = 256


def identity_targets(batch):
    """One-hot targets `i -> class i`: a mixed row names both clips."""
    return np.eye(batch, dtype=np.float32)


def recover(waves, mixed_waves, mixed_targets):
    """Per clip `(lam, partner)`, checking the convex combination.

    With targets `i -> class i`, row `i` of the mixed targets holds `lam`
    at `i` and `1 - lam` at the partner; the waveform must be mixed with
    the same `lam` and partner.
    """
    lams, partners = [], []
    for i, row in enumerate(mixed_targets):
        others = np.delete(np.arange(len(row)), i)
        partner = others[np.argmax(row[others])]
        if row[partner] == 0:  # not mixed, or mixed with itself
            partner = i
        lam = row[i]
        np.testing.assert_allclose(row.sum(), 1.0, atol=1e-6)
        assert np.count_nonzero(row) <= 2
        expected = lam * waves[i] + (1 - lam) * waves[partner]
        np.testing.assert_allclose(mixed_waves[i], expected, atol=1e-5)
        lams.append(lam)
        partners.append(partner)
    return np.array(lams), np.array(partners)


def test_mixed_pairs_are_convex_combinations_with_one_lambda():
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((BATCH, 8)).astype(np.float32)
    targets = identity_targets(BATCH)
    mixed_waves, mixed_targets = mixup(waves, targets, alpha=10.0,
                                       probability=1.0, rng=1)
    assert mixed_waves.shape == waves.shape and mixed_waves.dtype == np.float32
    assert mixed_targets.dtype == np.float32
    lams, partners = recover(waves, mixed_waves, mixed_targets)
    # Partners drawn by a random permutation (a clip may draw itself), not
    # the reversed batch.
    assert sorted(partners.tolist()) == list(range(BATCH))
    assert not np.array_equal(partners, np.arange(BATCH)[::-1])
    mixed = partners != np.arange(BATCH)
    assert mixed.mean() > 0.9
    # Beta(10, 10): mean 0.5, standard deviation 0.109.
    assert abs(lams[mixed].mean() - 0.5) < 0.03
    assert 0.08 < lams[mixed].std() < 0.14
    assert 0 < lams.min() and lams.max() <= 1


def test_share_of_mixed_clips_is_the_probability():
    waves = np.arange(BATCH, dtype=np.float32)[:, None] * np.ones(
        (1, 4), np.float32)
    targets = identity_targets(BATCH)
    rng = np.random.default_rng(4)
    for probability in (0.0, 0.3, 0.5, 1.0):
        shares = []
        for _ in range(20):  # 5120 clips per probability
            mixed, _ = mixup(waves, targets, probability=probability,
                             rng=rng)
            shares.append((np.abs(mixed - waves).max(axis=1) > 0).mean())
        # A clip drawn as its own partner stays as it is (1 in BATCH).
        expected = probability * (1 - 1 / BATCH)
        assert abs(np.mean(shares) - expected) < 0.02, probability


def test_probability_zero_keeps_the_batch():
    rng = np.random.default_rng(5)
    waves = rng.standard_normal((BATCH, 8)).astype(np.float32)
    targets = (rng.random((BATCH, 6)) < 0.3).astype(np.float32)
    kept_waves, kept_targets = mixup(waves, targets, probability=0.0, rng=0)
    np.testing.assert_array_equal(kept_waves, waves)
    np.testing.assert_array_equal(kept_targets, targets)


def test_multi_hot_targets_follow_their_waveforms():
    rng = np.random.default_rng(6)
    waves = rng.standard_normal((BATCH, 8)).astype(np.float32)
    targets = (rng.random((BATCH, 6)) < 0.3).astype(np.float32)
    mixed_waves, mixed = mixup(waves, targets, rng=7)
    assert mixed.min() >= 0 and mixed.max() <= 1 + 1e-6
    for i in range(BATCH):
        # Solve mixed_wave = lam * waves[i] + (1 - lam) * waves[j] for j.
        for j in range(BATCH):
            diff = waves[i] - waves[j]
            if not diff.any():
                continue
            lam = np.dot(mixed_waves[i] - waves[j], diff) / np.dot(diff, diff)
            if np.allclose(lam * diff + waves[j], mixed_waves[i], atol=1e-5):
                break
        else:
            lam, j = 1.0, i
        np.testing.assert_allclose(
            mixed[i], lam * targets[i] + (1 - lam) * targets[j], atol=1e-5)


def test_seeds_and_generators():
    rng = np.random.default_rng(8)
    waves = rng.standard_normal((16, 100)).astype(np.float32)
    targets = identity_targets(16)
    first = mixup(waves, targets, rng=3)
    again = mixup(waves, targets, rng=3)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], mixup(waves, targets, rng=4)[0])
    # A Generator advances: two calls differ, the same stream repeats.
    generator = np.random.default_rng(3)
    one, two = (mixup(waves, targets, rng=generator)[0] for _ in range(2))
    assert not np.array_equal(one, two)
    np.testing.assert_array_equal(one, first[0])  # the seed's first draw


def test_any_trailing_shape():
    waves = np.ones((4, 3, 5), np.float32)
    mixed, _ = mixup(waves, identity_targets(4), rng=0)
    np.testing.assert_allclose(mixed, 1.0, atol=1e-6)


def test_rejects_bad_arguments():
    waves = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="one-hot"):
        mixup(waves, np.array([0, 1]))
    with pytest.raises(ValueError, match="one-hot"):
        mixup(waves, np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="alpha"):
        mixup(waves, np.eye(2), alpha=0.0)
    with pytest.raises(ValueError, match="probability"):
        mixup(waves, np.eye(2), probability=1.5)
