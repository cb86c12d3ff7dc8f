"""The patch grid of AST's spectrogram patches, and the position-embedding
adaptation from one grid to another."""

from keras import ops


def patch_grid(num_mel_bins, max_length, patch_size, frequency_stride,
               time_stride):
    """`(F', T')`: patches along frequency and along time.

    Raises:
        ValueError: where one patch does not fit the spectrogram.

    Examples:
    >>> patch_grid(128, 1024, 16, 10, 10)
    (12, 101)
    """
    frequency = (num_mel_bins - patch_size) // frequency_stride + 1
    time = (max_length - patch_size) // time_stride + 1
    if frequency < 1 or time < 1:
        raise ValueError(
            f"A {patch_size}x{patch_size} patch does not fit a spectrogram of "
            f"{max_length} frames x {num_mel_bins} mel bins."
        )
    return frequency, time


def adapt_position_embedding(table, old_grid, new_grid):
    """Fits AST position embeddings to another patch grid.

    The AST authors' rule: the [CLS] and distillation rows stay as they are;
    along an axis of the `(F, T)` grid that shrinks the centre is kept, and
    along one that grows the grid is interpolated bilinearly (half-pixel
    centres, as `torch.nn.functional.interpolate(..., mode="bilinear")`).
    The two axes are independent, so the order the authors used (time
    first) does not matter.

    Args:
        table: `(1, 2 + F * T, dim)` position embeddings (frequency-major).
        old_grid: `(F, T)` of `table`.
        new_grid: the wanted `(F', T')`.

    Returns:
        float32 NumPy array `(1, 2 + F' * T', dim)`.

    Examples:
    >>> adapt_position_embedding(np.zeros((1, 1214, 8)), (12, 101),
    ...                          (12, 11)).shape
    (1, 134, 8)
    """
    table = ops.convert_to_tensor(table, "float32")
    (frequency, time), (new_frequency, new_time) = old_grid, new_grid
    dim = table.shape[-1]
    if table.shape[1] != frequency * time + 2:
        raise ValueError(
            f"Position embeddings of shape {tuple(table.shape)} do not hold "
            f"a {frequency}x{time} grid and two tokens."
        )
    grid = ops.reshape(table[:, 2:], (1, frequency, time, dim))
    # Centre crops first; then one resize covers the axes that grow (a
    # resize to the same size along an axis leaves it unchanged).
    if new_frequency < frequency:
        start = frequency // 2 - new_frequency // 2
        grid = grid[:, start:start + new_frequency]
    if new_time < time:
        start = time // 2 - new_time // 2
        grid = grid[:, :, start:start + new_time]
    if tuple(grid.shape[1:3]) != (new_frequency, new_time):
        grid = ops.image.resize(grid, (new_frequency, new_time),
                                interpolation="bilinear", antialias=False,
                                data_format="channels_last")
    grid = ops.reshape(grid, (1, new_frequency * new_time, dim))
    return ops.convert_to_numpy(ops.concatenate([table[:, :2], grid], 1))
