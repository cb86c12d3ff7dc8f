"""AST input embedding: spectrogram patches, [CLS] and distillation tokens."""

import keras
from keras import ops

from keras_ast.ops.patches import patch_grid


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

    Examples:
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
