"""Mixup of a batch of waveforms and targets, in numpy, as the AST authors.

Numpy only (no Keras, no backend): the pipelines run it in Grain worker
processes and in tf.data through `tf.numpy_function`, on every backend.
"""

import numpy as np


def mixup(waveforms, targets, alpha=10.0, probability=0.5, rng=None):
    """Mixes a share of the clips of a batch with random partners.

    Each clip `i` is mixed with probability `probability` (the authors used
    0.5 on AudioSet, 0.6 on Speech Commands) with a partner `j` drawn by a
    random permutation of the batch (possibly itself: the authors draw the
    partner at random): `lam * x[i] + (1 - lam) * x[j]`, with its own
    `lam ~ Beta(alpha, alpha)`, for the waveform and the target alike. The
    other clips are left as they are.

    Args:
        waveforms: float `(batch, samples)` (any trailing shape works).
        targets: one-hot (single-label) or multi-hot (multi-label)
            `(batch, num_classes)`; train with a loss that takes soft
            targets (`CategoricalCrossentropy`, `BinaryCrossentropy`).
        alpha: the Beta concentration (both parameters); AST uses 10.
        probability: the share of clips that are mixed, in [0, 1].
        rng: a `np.random.Generator` (its stream advances at each call),
            an int seed, or None (fresh entropy).

    Returns:
        `(mixed_waveforms, mixed_targets)`, float32.

    Examples:
        >>> waves = np.random.normal(size=(4, 16000)).astype("float32")
        >>> targets = np.eye(3, dtype="float32")[[0, 1, 2, 1]]
        >>> mixed_waves, mixed_targets = mixup(waves, targets, rng=0)
    """
    waveforms = np.asarray(waveforms, dtype=np.float32)
    targets = np.asarray(targets)
    if targets.ndim != 2 or targets.shape[0] != waveforms.shape[0]:
        raise ValueError(
            "mixup needs one-hot or multi-hot targets (batch, num_classes) "
            f"for waveforms {waveforms.shape}, got shape {targets.shape} "
            "(class ids must be one-hot first)."
        )
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}.")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}.")
    rng = np.random.default_rng(rng)  # a Generator is used as it is
    batch = waveforms.shape[0]
    lam = rng.beta(alpha, alpha, size=batch)
    lam = np.where(rng.random(batch) < probability, lam, 1.0)
    lam = lam.astype(np.float32)  # float32 arithmetic on the batch
    partner = rng.permutation(batch)

    def mix(x):
        weight = lam.reshape((batch,) + (1,) * (x.ndim - 1))
        return weight * x + (1.0 - weight) * x[partner]

    return mix(waveforms), mix(targets.astype(np.float32))
