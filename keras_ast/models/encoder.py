"""The pre-norm transformer encoder layer of AST (ViT/DeiT style)."""

import keras
from keras import ops

from keras_ast.ops import activations
from keras_ast.ops import attention
from keras_ast.ops.dense import Dense


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTEncoderLayer(keras.layers.Layer):
    """One pre-norm transformer block: attention, then an MLP.

    `x + Attention(LayerNorm(x))`, then `x + MLP(LayerNorm(x))` with an exact
    (erf) GELU, as in `transformers`' `ASTLayer`. Attention, the dense
    products and the GELU take the backend's kernels
    (`keras_ast.ops.attention`, `keras_ast.ops.dense`,
    `keras_ast.ops.activations`); attention maps and attention dropout
    take the plain softmax (`keras_ast.ops.attention.softmax_attention`).
    LayerNorm runs in float32 under mixed precision. Kernels start
    LeCun-normal (variance 1 / fan-in), not at `transformers`' fixed
    standard deviation of 0.02: that value suits width 768, and leaves a
    narrow model trained from scratch near uniform attention, stuck at
    chance for several epochs.

    Args:
        hidden_dim: width of the tokens.
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: width of the MLP.
        layer_norm_epsilon: LayerNorm epsilon.
        dropout: dropout rate after the attention output and the MLP.
        attention_dropout: dropout rate on the attention probabilities.

    Raises:
        ValueError: `num_heads` does not divide `hidden_dim`, or a call
            asks for both `return_attention_scores` and
            `return_cls_attention`.

    Call arguments:
        - `tokens`: `(batch, sequence, hidden_dim)`.
        - `training`: whether dropout is active.
        - `return_attention_scores`: also return the attention probabilities
          `(batch, heads, sequence, sequence)`; computed explicitly, for
          analysis.
        - `num_queries`: compute the output of the first `num_queries` tokens
          only (they still attend to all tokens); returns
          `(batch, num_queries, hidden_dim)`. The last layer needs no more
          for a classification from the [CLS] and distillation tokens.
        - `return_cls_attention`: also return how much the [CLS] and
          distillation tokens attend to each token, `(batch, sequence)`
          in float32: their attention probabilities, mean over the heads
          and over the two rows. Only those two rows of scores are
          computed; the layer's output takes the backend's kernel as
          usual. Not combined with `return_attention_scores`.

    Examples:
        >>> layer = ASTEncoderLayer(64, num_heads=4, intermediate_dim=128)
        >>> tuple(layer(np.zeros((2, 10, 64))).shape)
        (2, 10, 64)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        intermediate_dim,
        layer_norm_epsilon=1e-12,
        dropout=0.0,
        attention_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                f"({num_heads})."
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.intermediate_dim = intermediate_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.attention_dropout = attention_dropout

        def dense(units, name):
            return Dense(
                units,
                kernel_initializer="lecun_normal",
                dtype=self.dtype_policy,
                name=name,
            )

        def norm(name):
            return keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype="float32", name=name
            )

        self.norm_before = norm("layernorm_before")
        self.query = dense(hidden_dim, "query")
        self.key = dense(hidden_dim, "key")
        self.value = dense(hidden_dim, "value")
        self.attention_output = dense(hidden_dim, "attention_output")
        self.norm_after = norm("layernorm_after")
        self.intermediate = dense(intermediate_dim, "intermediate")
        self.output_dense = dense(hidden_dim, "output")
        self.attention_dropout_layer = keras.layers.Dropout(
            attention_dropout, dtype=self.dtype_policy
        )
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.norm_before.build(input_shape)
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.attention_output.build(input_shape)
        self.norm_after.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build(
            tuple(input_shape[:-1]) + (self.intermediate_dim,)
        )
        self.built = True

    def _heads(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[1], self.num_heads,
                               self.head_dim))

    def _attention(self, x, training, return_attention_scores, num_queries,
                   return_cls_attention=False):
        queries = x if num_queries is None else x[:, :num_queries]
        query = self._heads(self.query(queries))
        key = self._heads(self.key(x))
        value = self._heads(self.value(x))
        scale = self.head_dim**-0.5
        scores = None
        if return_cls_attention:
            # The [CLS] and distillation rows alone, as `softmax_attention`
            # computes every row.
            logits = ops.einsum("bqhd,bkhd->bhqk", query[:, :2], key) * scale
            rows = ops.softmax(ops.cast(logits, "float32"), axis=-1)
            scores = ops.mean(rows, axis=(1, 2))
        use_dropout = training and self.attention_dropout > 0
        if return_attention_scores or use_dropout:
            context, probabilities = attention.softmax_attention(
                query, key, value, scale,
                dropout=lambda p: self.attention_dropout_layer(
                    p, training=training))
            if return_attention_scores:
                scores = probabilities
        else:
            context = attention.attention(query, key, value, scale,
                                          training=training)
        context = ops.reshape(context,
                              (-1, ops.shape(queries)[1], self.hidden_dim))
        return self.attention_output(context), scores

    def call(self, tokens, training=None, return_attention_scores=False,
             num_queries=None, return_cls_attention=False):
        if return_attention_scores and return_cls_attention:
            raise ValueError(
                "Ask for return_attention_scores or return_cls_attention, "
                "not both: the attention maps hold the [CLS] rows.")
        residual = tokens if num_queries is None else tokens[:, :num_queries]
        x = self.norm_before(tokens)
        x, scores = self._attention(x, training, return_attention_scores,
                                    num_queries, return_cls_attention)
        x = self.dropout_layer(x, training=training)
        tokens = ops.cast(x, residual.dtype) + residual

        residual = tokens
        x = self.norm_after(tokens)
        x = self.intermediate(x)
        x = activations.gelu(x)
        x = self.output_dense(x)
        x = self.dropout_layer(x, training=training)
        tokens = ops.cast(x, residual.dtype) + residual
        if return_attention_scores or return_cls_attention:
            return tokens, scores
        return tokens

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
            }
        )
        return config
