"""`ASTBackbone`: the Audio Spectrogram Transformer encoder."""

import numbers

import keras
from keras import ops

from keras_ast.models.embedding import ASTEmbedding
from keras_ast.models.encoder import ASTEncoderLayer
from keras_ast.models.patchout import Patchout
from keras_ast.ops import slicing
from keras_ast.presets import io as preset_io
from keras_ast.presets.builtin import BUILTIN_PRESETS

# `enable_lora` targets: each encoder layer's Dense sublayers by name.
LORA_ATTENTION = ("query", "value")
LORA_MLP = ("intermediate", "output")
LORA_TARGETS = ("query", "key", "value", "attention_output",
                "intermediate", "output")
# What a head pools (`_encode`'s `pooling`): "cls", the mean of the [CLS]
# and distillation tokens; "mean", the mean of the patch tokens.
POOLINGS = preset_io.POOLINGS


def check_token_keep(token_keep):
    """Raises ValueError unless `token_keep` is a number in `(0, 1]`."""
    if (isinstance(token_keep, bool)
            or not isinstance(token_keep, numbers.Real)
            or not 0.0 < token_keep <= 1.0):
        raise ValueError(
            f"token_keep must be a number in (0, 1]; got {token_keep!r}.")


def check_pooling(pooling):
    """Raises ValueError unless `pooling` is one of `POOLINGS`."""
    if pooling not in POOLINGS:
        raise ValueError(
            f"pooling must be one of {', '.join(map(repr, POOLINGS))}; got "
            f"{pooling!r}.")


def _pool(tokens, pooling):
    """The pooled output of the final LayerNorm's `tokens` (`POOLINGS`)."""
    if pooling == "cls":
        return (tokens[:, 0] + tokens[:, 1]) / 2.0
    # Summed in float32: a bfloat16 sum over hundreds of tokens drifts.
    mean = ops.mean(ops.cast(tokens[:, 2:], "float32"), axis=1)
    return ops.cast(mean, keras.backend.standardize_dtype(tokens.dtype))


def pruning_layer(num_layers):
    """The layer after which token pruning keeps the chosen tokens.

    `max(1, num_layers // 4)` (3 of 12): see `ASTClassifier`'s `token_keep`.
    """
    return max(1, num_layers // 4)


def _prune(tokens, cls_attention, count):
    """The special tokens and the `count` patch tokens they attend to most.

    Args:
        tokens: `(batch, 2 + patches, hidden_dim)`.
        cls_attention: `(batch, 2 + patches)`, from the encoder layer's
            `return_cls_attention`.
        count: patch tokens to keep (static).

    Returns:
        `(batch, 2 + count, hidden_dim)`: the [CLS] and distillation
        tokens, then the kept patch tokens, highest attention first.
    """
    # A sort, not `ops.top_k`: JAX lowers top_k to a StableHLO composite
    # that TensorFlow's loader of JAX SavedModels does not read.
    top = ops.argsort(-cls_attention[:, 2:], axis=-1)[:, :count]
    index = ops.expand_dims(ops.cast(top, "int32") + 2, -1)
    index = ops.broadcast_to(
        index, (ops.shape(tokens)[0], count, ops.shape(tokens)[2]))
    kept = ops.take_along_axis(tokens, index, axis=1)
    return ops.concatenate([tokens[:, :2], kept], axis=1)


def _encode(embedding, encoder_layers, final_norm, features, training=None,
            pooled_only=False, output_hidden_states=False,
            output_attentions=False, remat=False, patchout=None,
            kept_tokens=None, pooling="cls"):
    """The AST forward pass, shared by every way of running the backbone.

    Args:
        embedding, encoder_layers, final_norm: the backbone's layers.
        features: `(batch, max_length, num_mel_bins)`.
        training: passed to every layer (dropout).
        pooled_only: return `{"pooled_output"}` alone; with `"cls"`
            pooling the last layer then computes only the [CLS] and
            distillation tokens (they still attend to every token): exact,
            and close to a twelfth less work for a 12-layer model.
        output_hidden_states: also return every layer's input and output,
            before the final LayerNorm, as `transformers` does.
        output_attentions: also return every layer's attention maps.
        remat: recompute each encoder layer's activations in the backward
            pass instead of keeping them (`keras.remat`, gradient
            checkpointing); ignored while building the functional graph.
        patchout: a `Patchout` layer run on the embeddings, or None.
        kept_tokens: None, or the patch tokens to keep after layer
            `pruning_layer(len(encoder_layers))` (token pruning; not with
            `output_attentions`).
        pooling: what `"pooled_output"` is: `"cls"`, the mean of the
            [CLS] and distillation tokens, or `"mean"`, the mean of the
            patch tokens (those left after patchout or pruning), both
            after the final LayerNorm.

    Raises:
        ValueError: an unknown `pooling`.
    """
    check_pooling(pooling)
    pooled_only_cls = pooled_only and pooling == "cls"
    x = embedding(features, training=training)
    if patchout is not None:
        x = patchout(x, training=training)
    states, attentions = [x], []
    prune_after = None if kept_tokens is None else pruning_layer(
        len(encoder_layers))
    for index, layer in enumerate(encoder_layers):
        last = index == len(encoder_layers) - 1
        queries = 2 if pooled_only_cls and last else None
        if index + 1 == prune_after and not last:
            x, cls_attention = layer(x, training=training,
                                     return_cls_attention=True)
            x = _prune(x, cls_attention, kept_tokens)
        elif output_attentions:
            x, scores = layer(x, training=training, num_queries=queries,
                              return_attention_scores=True)
            attentions.append(scores)
        elif remat and not isinstance(x, keras.KerasTensor):
            x = _rematerialized(layer, training, queries)(x)
        else:
            x = layer(x, training=training, num_queries=queries)
        if output_hidden_states:  # else each layer's output is freed
            states.append(x)
    tokens = final_norm(x[:, :2] if pooled_only_cls else x)
    outputs = {"pooled_output": _pool(tokens, pooling)}
    if not pooled_only:
        outputs["sequence_output"] = tokens
    if output_hidden_states:
        outputs["hidden_states"] = states
    if output_attentions:
        outputs["attentions"] = attentions
    return outputs


def _rematerialized(layer, training, num_queries):
    """`layer` as a function of its tokens alone, under `keras.remat`.

    The Python arguments are bound here: each backend's remat (e.g.
    `jax.checkpoint`) would otherwise trace them as arrays.
    """

    def run(tokens):
        return layer(tokens, training=training, num_queries=num_queries)

    return keras.remat(run)


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTBackbone(keras.Model):
    """Audio Spectrogram Transformer (Gong, Chung and Glass, 2021).

    Patch embedding of the log-mel spectrogram, [CLS] and distillation
    tokens, learned position embeddings, a pre-norm transformer encoder and
    a final LayerNorm. The arguments mirror `transformers.ASTConfig`; the
    defaults are those of the AudioSet checkpoints.

    Args:
        hidden_dim: token width (`hidden_size`).
        num_layers: encoder layers (`num_hidden_layers`).
        num_heads: attention heads (`num_attention_heads`).
        intermediate_dim: MLP width (`intermediate_size`).
        patch_size: side of the square patches.
        frequency_stride: patch stride along frequency.
        time_stride: patch stride along time.
        max_length: frames of the input features.
        num_mel_bins: mel bins of the input features.
        layer_norm_epsilon: LayerNorm epsilon (`layer_norm_eps`).
        dropout: dropout on embeddings and residual branches
            (`hidden_dropout_prob`).
        attention_dropout: dropout on attention probabilities
            (`attention_probs_dropout_prob`).
        dtype: a dtype or policy, e.g. `"mixed_bfloat16"`.
        remat: gradient checkpointing: each encoder layer's activations
            are recomputed in the backward pass rather than stored
            (`keras.remat`), so longer inputs and larger batches fit in
            memory, at the cost of running the encoder forward twice per
            training step. Outputs and gradients are unchanged.
        patchout_time: patchout (PaSST, Koutini et al. 2022; see
            `keras_ast.models.patchout.Patchout`): time columns of the
            `(F', T')` patch grid dropped at random in training, after
            the position embeddings are added; `0 <= patchout_time < T'`.
        patchout_frequency: frequency rows dropped likewise,
            `0 <= patchout_frequency < F'`.
        patchout_random: share of the remaining patch tokens dropped at
            random, in `[0, 1)`. The [CLS] and distillation tokens always
            stay, one choice serves the whole batch, and inference sees
            every patch; in training `sequence_output` holds
            `2 + kept patches` tokens.

    Raises:
        ValueError: a patchout setting outside its range.

    Inputs: features `(batch, max_length, num_mel_bins)`, as made by
    `ASTAudioConverter`.

    Outputs: a dict with `"sequence_output"` `(batch, tokens, hidden_dim)`
    and `"pooled_output"` `(batch, hidden_dim)`, the mean of the [CLS] and
    distillation tokens. `hidden_states(features)` also gives every layer's
    hidden states and attention maps.

    Examples:
        >>> backbone = ASTBackbone(hidden_dim=64, num_layers=2, num_heads=4,
        ...                        intermediate_dim=128, max_length=128)
        >>> out = backbone(np.zeros((1, 128, 128), "float32"))
        >>> tuple(out["pooled_output"].shape)
        (1, 64)
    """

    # Built-in preset names -> hub repository, description, size, score.
    presets = BUILTIN_PRESETS

    def __init__(
        self,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        intermediate_dim=3072,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        max_length=1024,
        num_mel_bins=128,
        layer_norm_epsilon=1e-12,
        dropout=0.0,
        attention_dropout=0.0,
        dtype=None,
        remat=False,
        patchout_time=0,
        patchout_frequency=0,
        patchout_random=0.0,
        **kwargs,
    ):
        embedding = ASTEmbedding(
            hidden_dim,
            num_mel_bins=num_mel_bins,
            max_length=max_length,
            patch_size=patch_size,
            frequency_stride=frequency_stride,
            time_stride=time_stride,
            dropout=dropout,
            dtype=dtype,
            name="embedding",
        )
        encoder_layers = [
            ASTEncoderLayer(
                hidden_dim,
                num_heads,
                intermediate_dim,
                layer_norm_epsilon=layer_norm_epsilon,
                dropout=dropout,
                attention_dropout=attention_dropout,
                dtype=dtype,
                name=f"encoder_layer_{index}",
            )
            for index in range(num_layers)
        ]
        final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype="float32", name="layernorm"
        )
        patchout = None
        if patchout_time or patchout_frequency or patchout_random:
            patchout = Patchout(
                embedding.grid, time=patchout_time,
                frequency=patchout_frequency, random=patchout_random,
                dtype=dtype, name="patchout",
            )

        features = keras.Input(
            shape=(max_length, num_mel_bins), dtype="float32",
            name="features",
        )
        outputs = _encode(embedding, encoder_layers, final_norm, features,
                          patchout=patchout)
        super().__init__(inputs=features, outputs=outputs, **kwargs)
        if dtype is not None:
            # A functional model does not keep the policy it was given.
            self.dtype_policy = keras.dtype_policies.get(dtype)

        self.embedding = embedding
        self.encoder_layers = encoder_layers
        self.final_norm = final_norm
        self.patchout = patchout
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.patch_size = patch_size
        self.frequency_stride = frequency_stride
        self.time_stride = time_stride
        self.max_length = max_length
        self.num_mel_bins = num_mel_bins
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.remat = bool(remat)
        self.patchout_time = int(patchout_time)
        self.patchout_frequency = int(patchout_frequency)
        self.patchout_random = float(patchout_random)

    def call(self, inputs, training=None, mask=None):
        if not self.remat:
            return super().call(inputs, training=training, mask=mask)
        # The functional graph calls each layer as recorded; remat needs
        # the layers called through `_encode`.
        return self._run(inputs, training=training)

    def _run(self, features, training=None, **options):
        return _encode(self.embedding, self.encoder_layers, self.final_norm,
                       ops.cast(features, "float32"),
                       training=training, remat=self.remat,
                       patchout=self.patchout, **options)

    def hidden_states(self, features, output_attentions=True):
        """Runs the encoder and keeps what every layer produced.

        Args:
            features: `(batch, max_length, num_mel_bins)`.
            output_attentions: also return the attention probabilities.

        Returns:
            A dict with `"hidden_states"`, a list of `num_layers + 1` tensors
            `(batch, tokens, hidden_dim)` (the embeddings, then each layer's
            output before the final LayerNorm, as `transformers` returns
            them), `"attentions"`, a list of `num_layers` tensors
            `(batch, heads, tokens, tokens)` (when asked for), and the
            `"sequence_output"` and `"pooled_output"` of a normal call.
        """
        return self._run(features, output_hidden_states=True,
                         output_attentions=output_attentions)

    def pooled_output(self, features, training=None, token_keep=None,
                      pooling="cls"):
        """The pooled output alone, `(batch, hidden_dim)`.

        With `pooling="cls"`, equal to `backbone(features)["pooled_output"]`
        (the mean of the [CLS] and distillation tokens after the final
        LayerNorm), but the last layer computes only those two tokens (all
        tokens are still attended to), which saves most of that layer's
        work. With `pooling="mean"`, the mean of the patch tokens
        (`sequence_output[:, 2:]`) after the final LayerNorm: the tokens
        patchout keeps in training, or token pruning keeps. `ASTClassifier`
        runs this.

        With `token_keep` below 1 and outside training, token pruning:
        after layer `max(1, num_layers // 4)` only `kept_tokens(token_keep)`
        patch tokens go on, those the [CLS] and distillation tokens attend
        to most in that layer (see `ASTClassifier`).

        Outside training, a batch of more than `inference_slice` clips runs
        that many clips at a time (`keras_ast.ops.slicing`): the same
        outputs, with the activation memory of one slice, not of the whole
        batch.

        Args:
            features: `(batch, max_length, num_mel_bins)`.
            training: whether dropout is active (None: Keras' learning
                phase, off outside `fit`).
            token_keep: None or 1.0 (every token), or the share of patch
                tokens to keep, in `(0, 1]`; ignored in training.
            pooling: `"cls"` or `"mean"` (above).

        Returns:
            `(batch, hidden_dim)`, in the compute dtype.

        Raises:
            ValueError: `token_keep` outside `(0, 1]`, or an unknown
                `pooling`.

        Examples:
            >>> backbone = ASTBackbone(hidden_dim=32, num_layers=2,
            ...     num_heads=2, intermediate_dim=64, max_length=128)
            >>> features = np.zeros((2, 128, 128), "float32")
            >>> tuple(backbone.pooled_output(features, pooling="mean").shape)
            (2, 32)
        """
        check_pooling(pooling)
        kept = None
        if token_keep is not None and not training:
            kept = self.kept_tokens(token_keep)
            if kept == self.token_grid[0] * self.token_grid[1]:
                kept = None

        def pooled(x):
            return self._run(x, training=training, pooled_only=True,
                             kept_tokens=kept,
                             pooling=pooling)["pooled_output"]

        if training:
            return pooled(features)
        return slicing.map_slices(pooled, features, self.inference_slice)

    @property
    def inference_slice(self):
        """Clips per slice of an inference batch: the largest power of two
        whose tokens fit the backend's budget
        (`keras_ast.ops.slicing.examples_per_slice`)."""
        frequency, time = self.token_grid
        return slicing.examples_per_slice(frequency * time + 2)

    def kept_tokens(self, token_keep):
        """Patch tokens token pruning keeps for the share `token_keep`.

        Args:
            token_keep: a share in `(0, 1]`.

        Returns:
            `round(token_keep * F' * T')`, at least 1.

        Raises:
            ValueError: `token_keep` outside `(0, 1]`.
        """
        check_token_keep(token_keep)
        frequency, time = self.token_grid
        return max(1, round(float(token_keep) * frequency * time))

    def enable_lora(self, rank, target_layer_names=None):
        """Freezes the backbone and adds LoRA factors to encoder Denses.

        As KerasHub's backbones: every backbone weight stops training,
        then each encoder layer's Dense sublayers named in
        `target_layer_names` get `keras.layers.Dense.enable_lora(rank)`:
        two trainable float32 factors `A (in, rank)` and `B (rank, out)`,
        `B` zero at first, whose product joins the frozen kernel. The
        model's outputs are unchanged until the factors train. Saving
        (`save_to_preset`, `save_weights`) writes the merged kernels: an
        ordinary preset, loaded without LoRA.

        Args:
            rank: the factors' inner size, at least 1.
            target_layer_names: the Dense sublayers to adapt, among
                `"query"`, `"key"`, `"value"`, `"attention_output"`,
                `"intermediate"` and `"output"` (None: `LORA_ATTENTION`,
                query and value; `LORA_ATTENTION + LORA_MLP` adds the MLP).

        Raises:
            ValueError: `rank` below 1, or an unknown target name.

        Examples:
            >>> backbone = ASTBackbone(hidden_dim=64, num_layers=2,
            ...     num_heads=4, intermediate_dim=128, max_length=128)
            >>> backbone.enable_lora(4)
            >>> len(backbone.trainable_weights)  # A and B, 2 x 2 layers
            8
        """
        if isinstance(rank, bool) or int(rank) != rank or rank < 1:
            raise ValueError(f"LoRA rank must be an integer >= 1; got {rank}.")
        names = (LORA_ATTENTION if target_layer_names is None
                 else tuple(target_layer_names))
        unknown = [name for name in names if name not in LORA_TARGETS]
        if unknown or not names:
            raise ValueError(
                f"Unknown LoRA target layer names {unknown or names}; "
                f"choose among {list(LORA_TARGETS)}.")
        self.trainable = True
        for layer in (self.embedding, *self.encoder_layers, self.final_norm):
            layer.trainable = False
        for layer in self.encoder_layers:
            denses = {
                "query": layer.query,
                "key": layer.key,
                "value": layer.value,
                "attention_output": layer.attention_output,
                "intermediate": layer.intermediate,
                "output": layer.output_dense,
            }
            for name in dict.fromkeys(names):
                dense = denses[name]
                # Trainable, so that its new factors are; Keras' LoRA then
                # freezes the kernel, and the bias is frozen here.
                dense.trainable = True
                dense.enable_lora(int(rank))
                if dense.bias is not None:
                    dense.bias.trainable = False

    @property
    def token_grid(self):
        """`(F', T')`, the patch grid behind the token sequence."""
        return self.embedding.grid

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "patch_size": self.patch_size,
            "frequency_stride": self.frequency_stride,
            "time_stride": self.time_stride,
            "max_length": self.max_length,
            "num_mel_bins": self.num_mel_bins,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "remat": self.remat,
            "patchout_time": self.patchout_time,
            "patchout_frequency": self.patchout_frequency,
            "patchout_random": self.patchout_random,
        }
        quantization = preset_io.quantization_of(self)
        if quantization:  # a float backbone's config: its arguments alone
            config["quantization"] = quantization
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        quantization = config.pop("quantization", None)
        backbone = cls(**config)
        preset_io.quantize_like(backbone, quantization)
        return backbone

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Quantizes the weights of the Dense layers (Keras' `quantize`).

        Keras' `Model.quantize` offers every layer; the others (norms,
        dropout, the patch convolution) only warn that they cannot be
        quantized. Without `filters`, only Dense layers are offered
        (`keras_ast.presets.io.is_dense`). Presets and `.keras` files keep
        the quantization where every Dense layer is quantized alike.

        Args:
            mode: `"int8"`, `"int4"`, `"float8"`, `"gptq"` or `"awq"`
                (optional with `config`).
            config: an optional `keras.quantizers.QuantizationConfig`.
            filters: Keras' `filters` (a regex, a list of them, or a
                callable taking a layer); None: the Dense layers.
            **kwargs: passed to Keras' `Model.quantize`.

        Returns:
            None; the backbone is quantized in place.

        Raises:
            ValueError: an unknown mode, invalid `filters`, or a layer
                already quantized (from Keras).

        Examples:
            >>> backbone = ASTBackbone(hidden_dim=64, num_layers=2,
            ...     num_heads=4, intermediate_dim=128, max_length=128)
            >>> backbone.quantize("int8")
            >>> backbone.encoder_layers[0].query.quantization_mode
            'int8'
        """
        if filters is None:
            filters = preset_io.is_dense
        super().quantize(mode, config=config, filters=filters, **kwargs)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Builds a backbone from a preset directory, with its weights.

        Args:
            preset: a built-in name (`ASTBackbone.presets`), a hub id
                (`owner/repo` or `hf://owner/repo`) or a local directory,
                in the Hugging Face format or written by `save_to_preset`
                (of a backbone or of a classifier: the head is ignored).
            load_weights: whether to load the weights or start random.
            **kwargs: overrides of the stored arguments (e.g. `dtype`,
                `patchout_time`, or `max_length`, which adapts the position
                embeddings).

        Returns:
            An `ASTBackbone`.

        Raises:
            FileNotFoundError: the preset is neither a built-in name, a
                reachable hub repository nor a folder
                (`keras_ast.presets.io.PresetNotFoundError`), or the folder
                has no `config.json`.
            ValueError: its `config.json` is neither a keras_ast nor a
                `transformers` AST config.

        Examples:
            ```python
            backbone = keras_ast.ASTBackbone.from_preset(
                "ast_audioset_10_10_0.4593", dtype="mixed_bfloat16")
            ```
        """
        return preset_io.load_preset(preset).load_backbone(
            cls, load_weights, **kwargs)

    def save_to_preset(self, preset_dir):
        """Writes config and weights to `preset_dir` (see `from_preset`).

        Args:
            preset_dir: the folder to write.
        """
        preset_io.save_preset(preset_dir, backbone=self)
