"""AST input embedding: spectrogram patches, [CLS] and distillation tokens."""

import keras
from keras import ops


def patch_grid(num_mel_bins, max_length, patch_size, frequency_stride,
               time_stride):
    """`(F', T')`: patches along frequency and along time."""
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

    Example:
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


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTEmbedding(keras.layers.Layer):
    """Turns features `(batch, time, freq)` into AST's input token sequence.

    The spectrogram is read as a `(freq, time)` image, cut into
    `patch_size` x `patch_size` patches with strides
    `(frequency_stride, time_stride)` by a convolution, and flattened
    frequency-major (token `f * T' + t`), as in the reference. A [CLS] and a
    distillation token are prepended and learned position embeddings added.

    Args:
        hidden_dim: width of the tokens.
        num_mel_bins: frequency size of the input features.
        max_length: time size (frames) of the input features.
        patch_size: side of the square patches.
        frequency_stride: patch stride along frequency.
        time_stride: patch stride along time.
        dropout: dropout rate on the embeddings.

    Example:
    >>> layer = ASTEmbedding(64, num_mel_bins=128, max_length=128)
    >>> tuple(layer(np.zeros((1, 128, 128))).shape)
    (1, 146, 64)
    """

    def __init__(
        self,
        hidden_dim,
        num_mel_bins=128,
        max_length=1024,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_mel_bins = num_mel_bins
        self.max_length = max_length
        self.patch_size = patch_size
        self.frequency_stride = frequency_stride
        self.time_stride = time_stride
        self.dropout = dropout
        self.grid = patch_grid(num_mel_bins, max_length, patch_size,
                               frequency_stride, time_stride)
        # The patch grid of weights about to be loaded, when it differs
        # from this layer's (see `load_own_variables`).
        self.stored_grid = None
        self.num_positions = self.grid[0] * self.grid[1] + 2
        self.projection = keras.layers.Conv2D(
            hidden_dim,
            kernel_size=patch_size,
            strides=(frequency_stride, time_stride),
            padding="valid",
            dtype=self.dtype_policy,
            name="projection",
        )
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="dropout"
        )

    def build(self, input_shape=None):
        self.projection.build((None, self.num_mel_bins, self.max_length, 1))
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.cls_token = self.add_weight(
            (1, 1, self.hidden_dim), initializer=init, name="cls_token"
        )
        self.distillation_token = self.add_weight(
            (1, 1, self.hidden_dim), initializer=init,
            name="distillation_token",
        )
        self.position_embedding = self.add_weight(
            (1, self.num_positions, self.hidden_dim), initializer=init,
            name="position_embedding",
        )
        self.built = True

    def call(self, features, training=None):
        # (batch, time, freq) -> a (freq, time) image with one channel.
        images = ops.expand_dims(ops.transpose(features, (0, 2, 1)), -1)
        patches = self.projection(images)
        tokens = ops.reshape(
            patches, (-1, self.grid[0] * self.grid[1], self.hidden_dim)
        )
        batch = ops.shape(tokens)[0]
        dtype = tokens.dtype
        cls = ops.broadcast_to(
            ops.cast(self.cls_token, dtype), (batch, 1, self.hidden_dim)
        )
        dist = ops.broadcast_to(
            ops.cast(self.distillation_token, dtype),
            (batch, 1, self.hidden_dim),
        )
        tokens = ops.concatenate([cls, dist, tokens], axis=1)
        tokens = tokens + ops.cast(self.position_embedding, dtype)
        return self.dropout_layer(tokens, training=training)

    def load_own_variables(self, store):
        """Loads stored variables, adapting position embeddings if needed.

        With `stored_grid` set (the loader sets it when a preset was saved
        for another `max_length` or other strides), the stored table is
        fitted to this layer's grid by `adapt_position_embedding`.
        """
        if self.stored_grid is None or tuple(self.stored_grid) == self.grid:
            return super().load_own_variables(store)
        variables = self._trainable_variables + self._non_trainable_variables
        index = str(next(i for i, v in enumerate(variables)
                         if v is self.position_embedding))
        adapted = {key: store[key] for key in store.keys()}
        adapted[index] = adapt_position_embedding(
            store[index], self.stored_grid, self.grid)
        return super().load_own_variables(adapted)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_positions, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_mel_bins": self.num_mel_bins,
                "max_length": self.max_length,
                "patch_size": self.patch_size,
                "frequency_stride": self.frequency_stride,
                "time_stride": self.time_stride,
                "dropout": self.dropout,
            }
        )
        return config
