"""Training augmentations of the AST recipes: SpecAugment, mixup, noise.

Everything here is written in `keras.ops` and `keras.random`, so it runs on
JAX, TensorFlow and torch, eagerly, inside `jit` / `tf.function`, and inside
`fit`. The recipes of the AST authors (Gong et al., 2021):

| data set | SpecAugment (freq / time) | mixup rate | lambda |
|---|---|---|---|
| AudioSet | 48 / 192 | 0.5 | Beta(10, 10) |
| ESC-50 | 24 / 96 | 0 | |
| Speech Commands V2 | 48 / 48 | 0.6 | Beta(10, 10) |

plus balanced sampling on full AudioSet (`balanced_sample_weights`).

Randomness: every function takes `seed`, which is what `keras.random` takes.
A `keras.random.SeedGenerator` gives fresh draws at each call and a
reproducible sequence; an `int` gives the *same* draw at every call (a
stateless op, like `keras.random.uniform(..., seed=3)`); `None` uses the
global generator, which JAX refuses inside `jax.jit`: pass a
`SeedGenerator` there.

Data pipelines: the waveform functions take numpy arrays as well as
tensors and return tensors of the Keras backend. With the TensorFlow
backend they can be mapped over a `tf.data.Dataset` directly; with JAX or
torch, `tf.data` graphs cannot run backend ops, so apply them in the model
(or a custom `train_step`), in a Python / Grain pipeline, or through
`tf.numpy_function` with `keras.ops.convert_to_numpy` on the results.
"""

import keras
import numpy as np
from keras import ops


def _seeds(seed, count):
    """`count` seeds for separate draws of one call.

    A `SeedGenerator` (or `None`) advances at each draw, so it is reused;
    one `int` would give the same stream to every draw, so distinct ints
    are derived from it.
    """
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        states = np.random.SeedSequence(int(seed) & 0xFFFFFFFF)
        return [int(s) for s in states.generate_state(count) & 0x7FFFFFFF]
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return [seed] * count
    raise ValueError(
        "`seed` must be None, an int or a keras.random.SeedGenerator; got "
        f"{seed!r}."
    )


def _float_tensor(x, name):
    x = ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = ops.cast(x, "float32")
    if len(x.shape) < 1:
        raise ValueError(
            f"`{name}` must have a batch dimension, got a scalar."
        )
    return x


def _beta(batch, alpha, seed):
    """`(batch,)` float32 draws of Beta(alpha, alpha).

    For an integer `alpha` up to 64 (AST uses 10) the draw is the
    `alpha`-th smallest of `2 * alpha - 1` uniforms, which is exactly
    Beta(alpha, alpha) distributed and much cheaper to compile than
    gamma rejection sampling (seconds per shape on JAX). Other values use
    `keras.random.beta`.
    """
    alpha = float(alpha)
    if alpha == int(alpha) and 1 <= alpha <= 64:
        k = int(alpha)
        uniforms = keras.random.uniform((batch, 2 * k - 1), dtype="float32",
                                        seed=seed)
        return ops.sort(uniforms, axis=-1)[:, k - 1]
    return keras.random.beta((batch,), alpha, alpha, dtype="float32",
                             seed=seed)


def _per_example(values, like):
    """`(batch,)` values reshaped to broadcast against `like`."""
    return ops.reshape(values, (-1,) + (1,) * (len(like.shape) - 1))


@keras.saving.register_keras_serializable(package="keras_ast")
class SpecAugment(keras.layers.Layer):
    """SpecAugment frequency and time masking of AST features.

    Features are `(batch, time, freq)`, as `ASTAudioConverter` returns them.
    Masks follow `torchaudio.transforms.FrequencyMasking` / `TimeMasking`
    with `iid_masks=True`: for every example and every mask, a width
    `floor(u1 * param)` (uniform in `[0, param)`, so at most `param - 1`
    rows or columns) and a start `floor(u2 * (size - u1 * param))` are
    drawn, and the band `[start, start + width)` is set to `mask_value`.
    A `param` larger than the axis is capped at the axis size. Masks of
    one axis are independent and may overlap.

    Active only with `training=True`; otherwise the input is returned as
    it is. The layer always computes in float32 (its dtype policy is
    float32, also under `mixed_bfloat16`).

    Masking value: the AST authors mask the log-mel features *before*
    normalisation with 0, so their masked bins end up at
    `(0 - mean) / (2 * std)` (about +0.467 with AudioSet statistics, the
    same value as the padding frames). Applied after `ASTAudioConverter`
    (on normalised features, as in a model), `mask_value=0.0` sets masked
    bins to the data set mean instead. For the authors' exact numbers use
    `SpecAugment.from_converter(converter, ...)`, which sets `mask_value`
    to the converter's normalised zero.

    Args:
        freq_mask_param: largest frequency-mask width (exclusive bound, as
            in torchaudio). AST: 48 (AudioSet, Speech Commands), 24
            (ESC-50).
        time_mask_param: largest time-mask width. AST: 192 (AudioSet), 96
            (ESC-50), 48 (Speech Commands).
        num_freq_masks: frequency masks per example.
        num_time_masks: time masks per example.
        mask_value: the value written into masked bins.
        seed: int seed of the layer's `SeedGenerator`, for reproducibility.

    Call arguments:
        features: float `(batch, time, freq)` or `(time, freq)`.
        training: whether to mask.

    Example:
    >>> augment = SpecAugment(freq_mask_param=48, time_mask_param=192)
    >>> features = np.random.normal(size=(2, 1024, 128)).astype("float32")
    >>> masked = augment(features, training=True)
    >>> tuple(masked.shape)
    (2, 1024, 128)
    """

    def __init__(
        self,
        freq_mask_param=48,
        time_mask_param=192,
        num_freq_masks=1,
        num_time_masks=1,
        mask_value=0.0,
        seed=None,
        **kwargs,
    ):
        # Features are float32 everywhere in keras_ast (see
        # ASTAudioConverter); masking in bfloat16 would only lose precision.
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        for name, value in (
            ("freq_mask_param", freq_mask_param),
            ("time_mask_param", time_mask_param),
            ("num_freq_masks", num_freq_masks),
            ("num_time_masks", num_time_masks),
        ):
            if int(value) != value or int(value) < 0:
                raise ValueError(
                    f"{name} must be a non-negative integer, got {value}."
                )
        self.freq_mask_param = int(freq_mask_param)
        self.time_mask_param = int(time_mask_param)
        self.num_freq_masks = int(num_freq_masks)
        self.num_time_masks = int(num_time_masks)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    @classmethod
    def from_converter(cls, converter, freq_mask_param=48,
                       time_mask_param=192, **kwargs):
        """A SpecAugment that masks like the AST authors' data loader.

        They mask the log-mel features with 0 before normalising them;
        after an `ASTAudioConverter` that normalises, that value is
        `(0 - mean) / (2 * std)`.

        Args:
            converter: the `ASTAudioConverter` whose output is masked.
            freq_mask_param: see the class.
            time_mask_param: see the class.
            **kwargs: other constructor arguments (not `mask_value`).

        Example:
        >>> converter = ASTAudioConverter(max_length=128)
        >>> augment = SpecAugment.from_converter(converter, 48, 48)
        """
        if "mask_value" in kwargs:
            raise ValueError("from_converter sets mask_value itself.")
        mask_value = 0.0
        if converter.do_normalize:
            mask_value = (0.0 - converter.mean) / (2.0 * converter.std)
        return cls(
            freq_mask_param=freq_mask_param,
            time_mask_param=time_mask_param,
            mask_value=mask_value,
            **kwargs,
        )

    def _axis_mask(self, batch, size, param, count):
        """Boolean `(batch, size)`: the union of `count` random bands."""
        draws = keras.random.uniform(
            (batch, count, 2), dtype="float32", seed=self.seed_generator
        )
        size_f = ops.cast(size, "float32")
        value = draws[..., 0] * ops.minimum(float(param), size_f)
        min_value = draws[..., 1] * (size_f - value)
        start = ops.floor(min_value)
        end = start + ops.floor(value)
        positions = ops.cast(ops.arange(size), "float32")[None, None, :]
        inside = ops.logical_and(
            positions >= start[..., None], positions < end[..., None]
        )
        return ops.any(inside, axis=1)

    def call(self, features, training=None):
        if not training:
            return features
        features = ops.cast(features, "float32")
        unbatched = len(features.shape) == 2
        if unbatched:
            features = features[None]
        if len(features.shape) != 3:
            raise ValueError(
                "SpecAugment expects features (batch, time, freq) or "
                f"(time, freq), got shape {features.shape}."
            )
        shape = ops.shape(features)
        batch, time, freq = shape[0], shape[1], shape[2]
        masked = None
        if self.time_mask_param > 0 and self.num_time_masks > 0:
            masked = self._axis_mask(
                batch, time, self.time_mask_param, self.num_time_masks
            )[:, :, None]
        if self.freq_mask_param > 0 and self.num_freq_masks > 0:
            freq_masked = self._axis_mask(
                batch, freq, self.freq_mask_param, self.num_freq_masks
            )[:, None, :]
            masked = (
                freq_masked
                if masked is None
                else ops.logical_or(masked, freq_masked)
            )
        if masked is not None:
            features = ops.where(
                masked, ops.cast(self.mask_value, "float32"), features
            )
        return features[0] if unbatched else features

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "freq_mask_param": self.freq_mask_param,
                "time_mask_param": self.time_mask_param,
                "num_freq_masks": self.num_freq_masks,
                "num_time_masks": self.num_time_masks,
                "mask_value": self.mask_value,
                "seed": self.seed,
            }
        )
        return config


def one_hot(labels, num_classes, dtype="float32"):
    """Integer class ids to float one-hot rows, for `mixup`.

    Args:
        labels: int `(batch,)` class ids.
        num_classes: number of classes.
        dtype: float dtype of the result.

    Returns:
        `(batch, num_classes)` one-hot labels.

    Example:
    >>> keras.ops.convert_to_numpy(one_hot(np.array([2, 0]), 3)).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    labels = ops.convert_to_tensor(labels)
    if keras.backend.is_float_dtype(labels.dtype):
        raise ValueError(
            "one_hot expects integer class ids; got floats (already one-hot?)."
        )
    return ops.one_hot(ops.cast(labels, "int32"), int(num_classes),
                       dtype=dtype)


def mixup(waveforms, labels, alpha=10.0, probability=1.0, seed=None):
    """Mixup of waveforms and their labels with the same lambda.

    Each example `i` is mixed with a partner `j` drawn by a random
    permutation of the batch (possibly itself, as in the authors' loader,
    which draws the partner uniformly):
    `waves[i] = lam_i * waves[i] + (1 - lam_i) * waves[j]` and the same for
    the labels, with `lam_i ~ Beta(alpha, alpha)` per example. AST mixes raw
    waveforms with Beta(10, 10) for a fraction of the examples (0.5 on
    AudioSet, 0.6 on Speech Commands): `probability` is that fraction,
    examples left out get `lam = 1`. (An integer `alpha` up to 64 is
    sampled exactly as an order statistic of uniforms, which compiles fast;
    other values use `keras.random.beta`.)

    For a batch of clips of different lengths (zero-padded, with
    `lengths`), a mixed clip lasts `max(lengths[i], lengths[j])`; this
    function does not track lengths, so give such batches full lengths or
    mix clips of one length.

    Labels must be float one-hot (single-label, see `one_hot`) or
    multi-hot (multi-label) rows; train with a loss that takes soft
    targets (`CategoricalCrossentropy`, `BinaryCrossentropy`).

    Args:
        waveforms: float `(batch, samples)` (any trailing shape works).
        labels: float `(batch, num_classes)`.
        alpha: Beta concentration (both parameters).
        probability: fraction of examples that are mixed, in [0, 1].
        seed: `None`, an int or a `keras.random.SeedGenerator` (see the
            module docstring).

    Returns:
        `(mixed_waveforms, mixed_labels)`, in the input (float) dtypes.

    Example:
    >>> waves = np.random.normal(size=(4, 16000)).astype("float32")
    >>> labels = one_hot(np.array([0, 1, 2, 1]), 3)
    >>> mixed_waves, mixed_labels = mixup(waves, labels, seed=1)
    """
    waveforms = _float_tensor(waveforms, "waveforms")
    labels = ops.convert_to_tensor(labels)
    if not keras.backend.is_float_dtype(labels.dtype):
        raise ValueError(
            "mixup needs float one-hot or multi-hot labels, got integer "
            "labels: convert class ids with keras_ast.data.augment.one_hot."
        )
    if len(labels.shape) < 2:
        raise ValueError(
            "mixup needs labels (batch, num_classes), got shape "
            f"{labels.shape}; convert class ids with one_hot."
        )
    if float(alpha) <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}.")
    if not 0.0 <= float(probability) <= 1.0:
        raise ValueError(
            f"probability must be in [0, 1], got {probability}."
        )
    beta_seed, shuffle_seed, coin_seed = _seeds(seed, 3)
    batch = ops.shape(waveforms)[0]
    lam = _beta(batch, alpha, beta_seed)
    if float(probability) < 1.0:
        coin = keras.random.uniform((batch,), dtype="float32", seed=coin_seed)
        lam = ops.where(coin < float(probability), lam, 1.0)
    partner = keras.random.shuffle(ops.arange(batch, dtype="int32"),
                                   seed=shuffle_seed)

    def mix(x):
        mixed = _per_example(lam, x) * ops.cast(x, "float32") + (
            1.0 - _per_example(lam, x)
        ) * ops.cast(ops.take(x, partner, axis=0), "float32")
        return ops.cast(mixed, x.dtype)

    return mix(waveforms), mix(labels)


def add_noise(waveforms, snr_db_range=(10.0, 40.0), seed=None):
    """Adds white Gaussian noise at a random signal-to-noise ratio.

    For each example an SNR is drawn uniformly in `snr_db_range` (dB) and
    noise of power `mean(x ** 2) / 10 ** (snr / 10)` is added. Silent
    examples stay silent. The signal power is the mean over all samples,
    zero padding included, and the noise covers the padding too.

    Args:
        waveforms: float `(batch, samples)` (any trailing shape works).
        snr_db_range: `(low, high)` SNR in dB; `low == high` fixes it.
        seed: `None`, an int or a `keras.random.SeedGenerator`.

    Returns:
        Noisy waveforms, in the input (float) dtype.

    Example:
    >>> waves = np.random.normal(size=(2, 16000)).astype("float32")
    >>> noisy = add_noise(waves, snr_db_range=(10, 40), seed=0)
    """
    waveforms = _float_tensor(waveforms, "waveforms")
    low, high = (float(v) for v in snr_db_range)
    if high < low:
        raise ValueError(f"snr_db_range must be (low, high), got "
                         f"{snr_db_range}.")
    snr_seed, noise_seed = _seeds(seed, 2)
    x = ops.cast(waveforms, "float32")
    batch = ops.shape(x)[0]
    snr_db = keras.random.uniform((batch,), low, high, dtype="float32",
                                  seed=snr_seed)
    axes = tuple(range(1, len(x.shape)))
    power = ops.mean(ops.square(x), axis=axes) if axes else ops.square(x)
    scale = ops.sqrt(power / ops.power(10.0, snr_db / 10.0))
    noise = keras.random.normal(ops.shape(x), dtype="float32",
                                seed=noise_seed)
    return ops.cast(x + _per_example(scale, x) * noise, waveforms.dtype)


def time_shift(waveforms, max_shift, seed=None):
    """Shifts each waveform by a random number of samples, zero-filled.

    Each example gets a shift drawn uniformly from the integers in
    `[-max_shift, max_shift]`: a positive shift delays the clip (zeros
    enter at the start, the end is cut), a negative one advances it
    (zeros at the end). Zero filling, not a circular roll, so the end of a
    clip never wraps around to its start.

    Args:
        waveforms: float `(batch, samples)`.
        max_shift: largest shift in samples (e.g. 1600 for 0.1 s at
            16 kHz).
        seed: `None`, an int or a `keras.random.SeedGenerator`.

    Returns:
        Shifted waveforms, same shape and dtype.

    Example:
    >>> waves = np.random.normal(size=(2, 16000)).astype("float32")
    >>> shifted = time_shift(waves, max_shift=1600, seed=0)
    """
    waveforms = _float_tensor(waveforms, "waveforms")
    if len(waveforms.shape) != 2:
        raise ValueError(
            "time_shift expects waveforms (batch, samples), got shape "
            f"{waveforms.shape}."
        )
    max_shift = int(max_shift)
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}.")
    if max_shift == 0:
        return waveforms
    (shift_seed,) = _seeds(seed, 1)
    shape = ops.shape(waveforms)
    batch, samples = shape[0], shape[1]
    shift = keras.random.randint((batch,), -max_shift, max_shift + 1,
                                 dtype="int32", seed=shift_seed)
    source = ops.arange(samples, dtype="int32")[None, :] - shift[:, None]
    valid = ops.logical_and(source >= 0, source < samples)
    source = ops.clip(source, 0, samples - 1)
    shifted = ops.take_along_axis(waveforms, source, axis=1)
    return ops.where(valid, shifted, ops.zeros_like(shifted))


def balanced_sample_weights(label_lists, num_classes):
    """Per-clip sampling weights of the AST authors' balanced sampling.

    `weight(clip) = sum over the clip's labels of 1000 / (count + 0.01)`,
    where `count` is the number of clips that carry the label. Multi-label
    data (AudioSet) is what it is for: a clip with a rare label is drawn
    more often, and a clip with several labels adds their weights. For
    single-label data it reduces to `1000 / (count + 0.01)`, i.e.
    class-balanced sampling. A label repeated within one clip counts once;
    a clip without labels gets weight 0 (never drawn).

    Use the weights with a weighted sampler (e.g.
    `np.random.choice(n, p=balanced_sampling_probabilities(...))`, or
    `tf.data.Dataset.sample_from_datasets` over classes).

    Args:
        label_lists: a sequence with, for each clip, a sequence of label
            ids (multi-label) or one int label id (single-label).
        num_classes: number of classes; label ids lie in
            `[0, num_classes)`.

    Returns:
        float64 numpy array `(num_clips,)`.

    Example:
    >>> balanced_sample_weights([[0], [0, 1]], num_classes=2).round(3)
    array([ 497.512, 1487.611])
    """
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    clips = []
    for index, labels in enumerate(label_lists):
        ids = np.unique(np.asarray(labels, dtype=np.int64).reshape(-1))
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(
                f"Clip {index} has label ids {ids.tolist()} outside "
                f"[0, {num_classes})."
            )
        clips.append(ids)
    counts = np.zeros(num_classes, np.float64)
    for ids in clips:
        counts[ids] += 1
    label_weight = 1000.0 / (counts + 0.01)
    return np.array([label_weight[ids].sum() for ids in clips], np.float64)


def balanced_sampling_probabilities(label_lists, num_classes):
    """`balanced_sample_weights` normalised to sum to 1.

    Args:
        label_lists: see `balanced_sample_weights`.
        num_classes: see `balanced_sample_weights`.

    Returns:
        float64 numpy array `(num_clips,)` of probabilities.

    Example:
    >>> balanced_sampling_probabilities([[0], [0], [1]], 2).round(3)
    array([0.251, 0.251, 0.499])
    """
    weights = balanced_sample_weights(label_lists, num_classes)
    total = weights.sum()
    if not total > 0:
        raise ValueError("No clip has a label: nothing to sample.")
    return weights / total
