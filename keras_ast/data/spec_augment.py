"""SpecAugment: masking, noise and time roll of AST features, a Keras layer.

Written in `keras.ops` and `keras.random`, so it runs on JAX, TensorFlow
and torch, eagerly, inside `jit` / `tf.function`, and inside `fit`
(`ASTClassifier.augmenter`). The settings of the AST authors (Gong et al.,
2021), widest frequency / time mask:

| data set | frequency | time |
|---|---|---|
| AudioSet | 48 | 192 |
| ESC-50 | 24 | 96 |
| Speech Commands V2 | 48 | 48 |

Their Speech Commands loader also adds noise to the normalised features and
rolls them along time (its `noise` option): `noise=` and `max_roll=` here,
applied after the masks, as there. Mixup and time shift, the other
augmentations of the recipes, are applied to waveforms in the data
pipelines (`keras_ast.data.mixup`, `time_shift=`).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ast")
class SpecAugment(keras.layers.Layer):
    """SpecAugment frequency and time masking, noise and roll of features.

    Features are `(batch, time, freq)`, as `ASTAudioConverter` returns them.
    Masks follow `torchaudio.transforms.FrequencyMasking` / `TimeMasking`
    with `iid_masks=True`: for every example and every mask, a width
    `floor(u1 * param)` (uniform in `[0, param)`, so at most `param - 1`
    rows or columns) and a start `floor(u2 * (size - u1 * param))` are
    drawn, and the band `[start, start + width)` is set to `mask_value`.
    A `param` larger than the axis is capped at the axis size. Masks of
    one axis are independent and may overlap.

    Then, as the authors' Speech Commands loader with `noise=True`, each
    example gets `u * v * noise` added (`u` uniform in `[0, 1)` per bin,
    `v` per example; they used `noise=0.1` on normalised features) and is
    rolled circularly along time by a whole number of frames drawn
    uniformly from `[-max_roll, max_roll]` (they used up to 10).

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
        noise: largest amplitude of the added uniform noise (0: none).
        max_roll: largest time roll, in frames (0: none).
        seed: int seed of the layer's `SeedGenerator`, for reproducibility.

    Raises:
        ValueError: a mask parameter, mask count or `max_roll` that is
            not a non-negative integer, or a negative `noise`.

    Call arguments:
        - `features`: float `(batch, time, freq)` or `(time, freq)`.
        - `training`: whether to mask.

    Examples:
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
        noise=0.0,
        max_roll=0,
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
            ("max_roll", max_roll),
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
        if not float(noise) >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise}.")
        self.noise = float(noise)
        self.max_roll = int(max_roll)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    @classmethod
    def from_converter(cls, converter, freq_mask_param=48,
                       time_mask_param=192, **kwargs):
        """A SpecAugment that masks like the AST authors' data loader.

        The AST authors mask the log-mel features with 0 before
        normalising them; after an `ASTAudioConverter` that normalises,
        that value is `(0 - mean) / (2 * std)`.

        Args:
            converter: the `ASTAudioConverter` whose output is masked.
            freq_mask_param: see the class.
            time_mask_param: see the class.
            **kwargs: other constructor arguments (not `mask_value`).

        Returns:
            A `SpecAugment` whose `mask_value` is the converter's
            normalised zero.

        Raises:
            ValueError: `mask_value` is among `kwargs`.

        Examples:
            >>> converter = keras_ast.ASTAudioConverter(max_length=128)
            >>> augment = SpecAugment.from_converter(converter, 48, 48)
            >>> round(augment.mask_value, 3)
            0.467
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
        if self.noise > 0.0:
            level = keras.random.uniform(
                (batch, 1, 1), dtype="float32", seed=self.seed_generator)
            features = features + self.noise * level * keras.random.uniform(
                shape, dtype="float32", seed=self.seed_generator)
        if self.max_roll > 0:
            features = self._roll(features, batch, time, freq)
        return features[0] if unbatched else features

    def _roll(self, features, batch, time, freq):
        """Rolls every example along time by its own random shift."""
        shift = keras.random.randint(
            (batch, 1), -self.max_roll, self.max_roll + 1, dtype="int32",
            seed=self.seed_generator)
        # Output frame t takes input frame (t - shift) mod time, as
        # torch.roll / np.roll.
        source = ops.mod(ops.arange(time, dtype="int32")[None, :] - shift,
                         time)
        source = ops.broadcast_to(source[:, :, None], (batch, time, freq))
        return ops.take_along_axis(features, source, axis=1)

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
                "noise": self.noise,
                "max_roll": self.max_roll,
            }
        )
        return config
