"""`Patchout`: PaSST's structured dropping of patch tokens in training."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ast")
class Patchout(keras.layers.Layer):
    """Drops whole time columns and frequency rows of the patch grid.

    Patchout (Koutini et al., "Efficient Training of Audio Transformers
    with Patchout", Interspeech 2022): in training, `time` random time
    columns and `frequency` random frequency rows of the `(F', T')` patch
    grid are removed from the token sequence, then the share `random` of
    the remaining patch tokens. The [CLS] and distillation tokens (the
    first two) always stay; the kept patch tokens keep their order. One
    choice serves the whole batch, and the counts are static, so the
    layer runs under `jit`. Outside training the tokens pass unchanged:
    in training the sequence is shorter than at inference.

    Input tokens are AST's: two special tokens, then the patches
    frequency-major (token `2 + f * T' + t`), position embeddings already
    added.

    Args:
        grid: `(F', T')`, the patch grid.
        time: time columns to drop, `0 <= time < T'`.
        frequency: frequency rows to drop, `0 <= frequency < F'`.
        random: share of the remaining patch tokens to drop, in `[0, 1)`.
        seed: seed of the layer's `keras.random.SeedGenerator`.

    Raises:
        ValueError: a count or share outside the ranges above.

    Examples:
        >>> layer = Patchout((4, 10), time=3, frequency=1)
        >>> tokens = np.zeros((2, 42, 8), "float32")
        >>> tuple(layer(tokens, training=True).shape)
        (2, 23, 8)
        >>> tuple(layer(tokens).shape)
        (2, 42, 8)
    """

    def __init__(self, grid, time=0, frequency=0, random=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        frequencies, times = (int(size) for size in grid)
        time, frequency, random = int(time), int(frequency), float(random)
        if not 0 <= time < times:
            raise ValueError(
                f"patchout_time must be in [0, {times}) for the patch grid "
                f"{frequencies} x {times} (frequency x time); got {time}.")
        if not 0 <= frequency < frequencies:
            raise ValueError(
                f"patchout_frequency must be in [0, {frequencies}) for the "
                f"patch grid {frequencies} x {times} (frequency x time); "
                f"got {frequency}.")
        if not 0.0 <= random < 1.0:
            raise ValueError(
                f"patchout_random must be in [0, 1); got {random}.")
        self.grid = (frequencies, times)
        self.time = time
        self.frequency = frequency
        self.random = random
        self.seed = seed
        kept = (frequencies - frequency) * (times - time)
        self.kept_patches = max(1, round(kept * (1.0 - random)))
        self.active = self.kept_patches < frequencies * times
        if self.active:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def _kept(self, size, dropped):
        """Sorted indices of `size - dropped` random entries of `size`."""
        indices = ops.arange(size, dtype="int32")
        if not dropped:
            return indices
        shuffled = keras.random.shuffle(indices, seed=self.seed_generator)
        return ops.sort(shuffled[:size - dropped])

    def indices(self):
        """Sorted token indices to keep, the two special tokens first."""
        frequencies, times = self.grid
        rows = self._kept(frequencies, self.frequency)
        columns = self._kept(times, self.time)
        patches = ops.reshape(rows[:, None] * times + columns[None, :], (-1,))
        if self.random:
            patches = keras.random.shuffle(patches, seed=self.seed_generator)
            patches = ops.sort(patches[:self.kept_patches])
        special = ops.arange(2, dtype="int32")
        return ops.concatenate([special, patches + 2], axis=0)

    def call(self, tokens, training=None):
        if not (training and self.active):
            return tokens
        return ops.take(tokens, self.indices(), axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid": list(self.grid),
                "time": self.time,
                "frequency": self.frequency,
                "random": self.random,
                "seed": self.seed,
            }
        )
        return config
