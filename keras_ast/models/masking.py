"""`PatchMasking`: the random patch masks of masked spectrogram pretraining."""

import numbers

import keras
from keras import ops

MASKINGS = ("random", "time_blocks")


def check_mask_ratio(mask_ratio, num_patches):
    """The number of masked patches, `round(mask_ratio * num_patches)`.

    Args:
        mask_ratio: the share of patch tokens to mask, in `(0, 1)`.
        num_patches: `F' * T'`, the patch tokens.

    Returns:
        The masked count, in `[1, num_patches - 1]`.

    Raises:
        ValueError: `mask_ratio` is not a number in `(0, 1)`, or it masks
            no patch or every patch of the grid.
    """
    if (isinstance(mask_ratio, bool)
            or not isinstance(mask_ratio, numbers.Real)
            or not 0.0 < mask_ratio < 1.0):
        raise ValueError(
            f"mask_ratio must be a number in (0, 1); got {mask_ratio!r}.")
    count = round(float(mask_ratio) * num_patches)
    if not 0 < count < num_patches:
        raise ValueError(
            f"mask_ratio {mask_ratio} masks {count} of {num_patches} patch "
            "tokens; at least one must be masked and one stay visible.")
    return count


def split_mask(mask, num_masked):
    """The masked and the visible patch indices of a mask, each ascending.

    Args:
        mask: `(batch, patches)` booleans, True where a patch is masked,
            exactly `num_masked` True in every row.
        num_masked: the masked count (static).

    Returns:
        `(masked, visible)`, int32 `(batch, num_masked)` and
        `(batch, patches - num_masked)`.
    """
    patches = ops.shape(mask)[1]
    # Masked patches first, each group in index order: one sort.
    key = (1 - ops.cast(mask, "int32")) * patches + ops.arange(
        patches, dtype="int32")
    order = ops.cast(ops.argsort(key, axis=-1), "int32")
    return order[:, :num_masked], order[:, num_masked:]


def _ranks(values):
    """The rank of each entry along the last axis (0: the smallest)."""
    return ops.argsort(ops.argsort(values, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="keras_ast")
class PatchMasking(keras.layers.Layer):
    """Chooses, for each example, the patch tokens to mask.

    Masked spectrogram modelling (SSAST, Gong et al. 2022; Audio-MAE,
    Huang et al. 2022) hides a share of the `(F', T')` patch grid and
    trains the model to predict it. Each example gets its own mask, of the
    static size `round(mask_ratio * F' * T')`, so the layer runs under
    `jit`; the layer's `keras.random.SeedGenerator` advances at every call
    (inside `fit` too). Masks cover patch tokens only: the [CLS] and
    distillation tokens are never masked.

    - `"random"`: the masked patches are a uniform random choice.
    - `"time_blocks"`: whole time columns of the grid, in blocks of
      `block_size` consecutive columns (at a random offset per example),
      as SSAST's cluster masking and EAT's block masking, which matter for
      speech: a patch is hard to guess from its time neighbours only when
      they are hidden too. The blocks are taken in a random order until
      the count is reached; the last block may be taken in part (whole
      columns first, then random rows of one column), so the count is
      exact.

    Args:
        grid: `(F', T')`, the patch grid (`ASTBackbone.token_grid`).
        mask_ratio: the share of patch tokens to mask, in `(0, 1)`.
        masking: `"random"` or `"time_blocks"`.
        block_size: time columns a block, `1 <= block_size <= T'` (used by
            `"time_blocks"`).
        seed: seed of the layer's `keras.random.SeedGenerator`.

    Raises:
        ValueError: `mask_ratio` outside `(0, 1)` (or masking no patch or
            every patch), an unknown `masking`, or `block_size` outside
            `[1, T']`.

    Call arguments: `features`, any tensor whose first axis is the batch.
    Returns `(batch, F' * T')` booleans, True where a patch is masked, in
    the token order of `ASTEmbedding` (patch `f * T' + t`).

    Examples:
        >>> layer = PatchMasking((8, 4), mask_ratio=0.5, seed=1)
        >>> mask = layer(np.zeros((2, 64, 128), "float32"))
        >>> keras.ops.convert_to_numpy(mask).sum(axis=1).tolist()
        [16, 16]
    """

    def __init__(self, grid, mask_ratio=0.75, masking="random", block_size=3,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        frequencies, times = (int(size) for size in grid)
        if masking not in MASKINGS:
            raise ValueError(
                f"Unknown masking {masking!r}; choose among {list(MASKINGS)}.")
        if (isinstance(block_size, bool)
                or not isinstance(block_size, numbers.Integral)
                or not 1 <= block_size <= times):
            raise ValueError(
                f"block_size must be an integer in [1, {times}] (the time "
                f"columns of the {frequencies} x {times} patch grid); got "
                f"{block_size!r}.")
        self.grid = (frequencies, times)
        self.num_patches = frequencies * times
        self.num_masked = check_mask_ratio(mask_ratio, self.num_patches)
        self.mask_ratio = float(mask_ratio)
        self.masking = masking
        self.block_size = int(block_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def _uniform(self, shape):
        return keras.random.uniform(shape, seed=self.seed_generator,
                                    dtype="float32")

    def _keys(self, batch):
        """`(batch, F' * T')` sort keys: the smallest are masked."""
        if self.masking == "random":
            return self._uniform((batch, self.num_patches))
        frequencies, times = self.grid
        size = self.block_size
        blocks = (times - 1 + size - 1) // size + 1
        shift = ops.floor(self._uniform((batch, 1)) * size)
        columns = ops.arange(times, dtype="float32")[None, :]
        block = ops.cast(ops.floor((columns + shift) / size), "int32")
        # Integer block ranks keep each block's columns together; half a
        # rank of noise orders the columns inside a block.
        block_rank = ops.cast(_ranks(self._uniform((batch, blocks))),
                              "float32")
        column_key = (ops.take_along_axis(block_rank, block, axis=1)
                      + 0.5 * self._uniform((batch, times)))
        column_rank = ops.cast(_ranks(column_key), "float32")
        keys = (column_rank[:, None, :]
                + 0.5 * self._uniform((batch, frequencies, times)))
        return ops.reshape(keys, (batch, self.num_patches))

    def call(self, features):
        batch = ops.shape(features)[0]
        return _ranks(self._keys(batch)) < self.num_masked

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_patches)

    def compute_output_spec(self, features):
        return keras.KerasTensor((features.shape[0], self.num_patches),
                                 dtype="bool")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid": list(self.grid),
                "mask_ratio": self.mask_ratio,
                "masking": self.masking,
                "block_size": self.block_size,
                "seed": self.seed,
            }
        )
        return config
