"""`ASTPretrainer`: masked spectrogram patch modelling on unlabelled audio."""

import keras
import numpy as np
from keras import ops

from keras_ast.models.audio_converter import ASTAudioConverter
from keras_ast.models.audio_converter import check_preprocessor
from keras_ast.models.audio_converter import task_features
from keras_ast.models.backbone import ASTBackbone
from keras_ast.models.backbone import _encode
from keras_ast.models.backbone import _rematerialized
from keras_ast.models.encoder import ASTEncoderLayer
from keras_ast.models.masking import PatchMasking
from keras_ast.models.masking import split_mask
from keras_ast.presets import io as preset_io

# Audio-MAE's and MAE's base rate (theirs is scaled by batch / 256; ours is
# not: pass a rate or a schedule to `compile` for other batches).
DEFAULT_LEARNING_RATE = 1.5e-4
# MAE's AdamW: betas (0.9, 0.95), weight decay 0.05 except on these.
DEFAULT_WEIGHT_DECAY = 0.05
NO_WEIGHT_DECAY = ("bias", "gamma", "beta", "token", "position_embedding")
# Audio-MAE's `norm_pix_loss`: each target patch minus its mean, over
# sqrt(variance + NORM_EPSILON).
NORM_EPSILON = 1e-6


def patch_indices(backbone):
    """Where each patch of the grid reads the features.

    Args:
        backbone: an `ASTBackbone` (its geometry alone is used).

    Returns:
        int32 NumPy array `(F' * T', patch_size ** 2)`: for patch
        `f * T' + t` (the embedding's token order) and pixel `i * p + j`
        (`i` along frequency, `j` along time), the flat index
        `frame * num_mel_bins + bin` of `features[frame, bin]`, with
        `frame = t * time_stride + j` and `bin = f * frequency_stride + i`.
        Patches overlap where a stride is below `patch_size`, as in the
        embedding's convolution.
    """
    frequencies, times = backbone.token_grid
    size = backbone.patch_size
    f, t, i, j = np.meshgrid(np.arange(frequencies), np.arange(times),
                             np.arange(size), np.arange(size),
                             indexing="ij")
    frame = t * backbone.time_stride + j
    mel_bin = f * backbone.frequency_stride + i
    flat = frame * backbone.num_mel_bins + mel_bin
    return flat.reshape(frequencies * times, size * size).astype("int32")


def _gather(tokens, indices):
    """`tokens[b, indices[b, k]]`: `(batch, k, width)` from
    `(batch, n, width)` and int32 `(batch, k)`."""
    index = ops.expand_dims(indices, -1)
    index = ops.broadcast_to(
        index, (ops.shape(indices)[0], ops.shape(indices)[1],
                ops.shape(tokens)[2]))
    return ops.take_along_axis(tokens, index, axis=1)


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTPretrainer(keras.Model):
    """Self-supervised pretraining of an `ASTBackbone` on unlabelled audio.

    Masked spectrogram patch modelling, as SSAST (Gong et al., AAAI 2022)
    and Audio-MAE (Huang et al., NeurIPS 2022): each example's patch
    tokens are masked in part (`keras_ast.models.masking.PatchMasking`,
    `round(mask_ratio * F' * T')` of them), the backbone's encoder reads
    the rest, and a light decoder predicts the masked patches of the
    (already normalised) input features. The [CLS] and distillation
    tokens are never masked.

    - Encoder. `visible_only=True` (Audio-MAE): the embedding (patches and
      position embeddings) is computed for every patch, then only the two
      special tokens and the visible patch tokens go through the encoder
      layers and the final LayerNorm: at a ratio of 0.75 a step costs
      about a quarter of the encoder's work. `visible_only=False`
      (SSAST): every token goes through, the masked ones replaced by a
      learned mask token plus their position embedding. The backbone's
      own patchout is not used here; its `remat` is (the decoder's layers
      too), and its dtype policy (e.g. `"mixed_bfloat16"`) is the
      pretrainer's.
    - Decoder (Audio-MAE's): a Dense from `hidden_dim` to `decoder_dim`,
      a learned mask token in each masked patch's place, the decoder's own
      learned position embeddings, `decoder_layers` `ASTEncoderLayer`
      blocks, a float32 LayerNorm and a float32 Dense to the
      `patch_size ** 2` values of each masked patch.
    - Loss (Audio-MAE's `norm_pix_loss`): the targets are the patches of
      the input features, cut on the embedding's grid (overlapping where
      the strides are below `patch_size`) and each normalised by its own
      mean and variance (`(x - mean) / sqrt(var + 1e-6)`); the loss is
      the mean squared error over the masked patches only, in float32. It
      is the `"loss"` of `fit` and `evaluate`. Predicting zero everywhere,
      that is each patch's own mean, gives about 1.0 (exactly the share of
      patches that are not constant): the baseline a useful model beats.
    - Optional InfoNCE term (SSAST's discriminative loss), with
      `contrastive_weight > 0`: a second float32 Dense maps each masked
      patch's decoder output to a vector that must pick its own target
      patch among the clip's masked patches (softmax over their dot
      products); the loss adds `contrastive_weight` times its
      cross-entropy (`contrastive_loss`; SSAST weighs its reconstruction
      term 10 to 1 against it). `"loss"` is then the sum.

    The pretrainer comes compiled with the defaults of `compile()`, so
    `fit` works at once; a dataset may yield `x` alone or `(x, y)` (the
    labels are ignored). `pretrainer.backbone` is the ordinary backbone,
    whose weights the pretrainer trains in place: `save_to_preset` writes
    it as a backbone preset that `ASTBackbone.from_preset` and
    `ASTClassifier.from_preset(..., num_classes=...)` read.

    Args:
        backbone: an `ASTBackbone`.
        preprocessor: an `ASTAudioConverter`, or None for feature inputs.
        mask_ratio: the share of patch tokens masked, in `(0, 1)`.
        masking: `"random"` or `"time_blocks"` (whole time columns of the
            patch grid in blocks of `block_size`; see `PatchMasking`).
        block_size: time columns a block for `"time_blocks"`, in
            `[1, T']`.
        visible_only: whether the encoder reads the visible patches only
            (Audio-MAE) or every token with mask tokens (SSAST).
        contrastive_weight: the weight of SSAST's discriminative
            (InfoNCE) term in the loss; 0 leaves it out (see below).
        decoder_dim: the decoder's width (None: `hidden_dim // 2`).
        decoder_layers: the decoder's transformer blocks, at least 1.
        decoder_heads: the decoder's attention heads, dividing
            `decoder_dim` (None: the backbone's `num_heads`).
        seed: seed of the masks' random generator.

    Raises:
        ValueError: `mask_ratio` outside `(0, 1)`, an unknown `masking`,
            `block_size` outside `[1, T']`, `decoder_layers` below 1,
            `decoder_heads` not dividing `decoder_dim`, a negative
            `contrastive_weight`, or a preprocessor
            whose `max_length` or `num_mel_bins` is not the backbone's.

    Attributes: `num_masked`, the masked patches per example;
    `patch_indices`, the `(F' * T', patch_size ** 2)` table of where each
    patch reads the features (the module's `patch_indices`);
    `patch_masking`, the mask layer (its generator advances at each call).

    Call inputs: waveforms `(batch, samples)` with a preprocessor, else
    features `(batch, max_length, num_mel_bins)`, or a dict
    `{"waveforms": ..., "lengths": ...}` or `{"features": ...}`, as
    `ASTClassifier` takes them. The call returns the dict described in
    `reconstruct`, as backend tensors (`patch_mask` gives a mask instead
    of a random one).

    Examples:
        >>> backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
        ...     intermediate_dim=64, max_length=64, frequency_stride=16,
        ...     time_stride=16)
        >>> pretrainer = ASTPretrainer(backbone, mask_ratio=0.75,
        ...                            masking="time_blocks", block_size=2)
        >>> backbone.token_grid, pretrainer.num_masked
        ((8, 4), 24)

        ```python
        backbone = keras_ast.ASTBackbone(hidden_dim=192, num_layers=4,
            num_heads=4, intermediate_dim=768, max_length=128)
        pretrainer = keras_ast.ASTPretrainer(
            backbone, preprocessor=keras_ast.ASTAudioConverter(max_length=128))
        pretrainer.fit(unlabelled_waveforms, epochs=60)  # "loss" falls below 1
        pretrainer.save_to_preset("runs/pretrain/preset")
        ```
    """

    backbone_cls = ASTBackbone
    preprocessor_cls = ASTAudioConverter

    def __init__(
        self,
        backbone,
        preprocessor=None,
        mask_ratio=0.75,
        masking="random",
        block_size=3,
        visible_only=True,
        decoder_dim=None,
        decoder_layers=2,
        decoder_heads=None,
        contrastive_weight=0.0,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", backbone.dtype_policy)
        super().__init__(**kwargs)
        check_preprocessor(preprocessor, backbone)
        decoder_dim = int(decoder_dim or max(1, backbone.hidden_dim // 2))
        decoder_heads = int(decoder_heads or backbone.num_heads)
        decoder_layers = int(decoder_layers)
        if decoder_layers < 1:
            raise ValueError(
                f"decoder_layers must be >= 1; got {decoder_layers}.")
        if decoder_dim % decoder_heads:
            raise ValueError(
                f"decoder_heads ({decoder_heads}) must divide decoder_dim "
                f"({decoder_dim}).")
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.patch_masking = PatchMasking(
            backbone.token_grid, mask_ratio=mask_ratio, masking=masking,
            block_size=block_size, seed=seed, name="patch_masking")
        self.mask_ratio = self.patch_masking.mask_ratio
        self.block_size = self.patch_masking.block_size
        self.visible_only = bool(visible_only)
        self.decoder_dim = decoder_dim
        self.decoder_layers = decoder_layers
        self.decoder_heads = decoder_heads
        self.seed = seed
        self.contrastive_weight = float(contrastive_weight)
        if not self.contrastive_weight >= 0.0:
            raise ValueError(
                f"contrastive_weight must be >= 0; got {contrastive_weight}.")
        self.num_masked = self.patch_masking.num_masked
        self.patch_indices = patch_indices(backbone)

        policy = self.dtype_policy
        num_positions = backbone.embedding.num_positions
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        if not self.visible_only:
            self.encoder_mask_token = self.add_weight(
                (1, 1, backbone.hidden_dim), initializer=init,
                name="encoder_mask_token")
        self.decoder_embed = keras.layers.Dense(
            decoder_dim, dtype=policy, name="decoder_embed")
        self.decoder_mask_token = self.add_weight(
            (1, 1, decoder_dim), initializer=init, name="decoder_mask_token")
        self.decoder_position_embedding = self.add_weight(
            (1, num_positions, decoder_dim), initializer=init,
            name="decoder_position_embedding")
        self.decoder_blocks = [
            ASTEncoderLayer(
                decoder_dim, decoder_heads, 4 * decoder_dim,
                layer_norm_epsilon=backbone.layer_norm_epsilon, dtype=policy,
                name=f"decoder_layer_{index}")
            for index in range(decoder_layers)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=backbone.layer_norm_epsilon, dtype="float32",
            name="decoder_layernorm")
        self.decoder_prediction = keras.layers.Dense(
            backbone.patch_size ** 2, dtype="float32",
            name="decoder_prediction")
        self.decoder_embed.build((None, None, backbone.hidden_dim))
        for block in self.decoder_blocks:
            block.build((None, num_positions, decoder_dim))
        self.decoder_norm.build((None, None, decoder_dim))
        self.decoder_prediction.build((None, None, decoder_dim))
        self.contrastive_head = None
        if self.contrastive_weight:
            self.contrastive_head = keras.layers.Dense(
                backbone.patch_size ** 2, dtype="float32",
                name="contrastive_head")
            self.contrastive_head.build((None, None, decoder_dim))
        self.built = True
        # A task comes ready to `fit` (the KerasHub convention).
        self.compile()

    # === Forward pass ===

    def _features(self, inputs):
        return ops.cast(
            task_features(inputs, self.preprocessor, "pretrainer"),
            "float32")

    def target_patches(self, features):
        """The normalised patches of features, the reconstruction targets.

        Args:
            features: `(batch, max_length, num_mel_bins)`.

        Returns:
            float32 `(batch, F' * T', patch_size ** 2)`: the patches cut as
            `patch_indices` says, each minus its mean and divided by
            `sqrt(variance + 1e-6)` (a constant patch is all zeros).
        """
        features = ops.cast(features, "float32")
        batch = ops.shape(features)[0]
        flat = ops.reshape(features, (batch, -1))
        index = ops.convert_to_tensor(self.patch_indices.reshape(-1))
        patches = ops.reshape(ops.take(flat, index, axis=1),
                              (batch,) + self.patch_indices.shape)
        mean = ops.mean(patches, axis=-1, keepdims=True)
        variance = ops.var(patches, axis=-1, keepdims=True)
        return (patches - mean) / ops.sqrt(variance + NORM_EPSILON)

    def _layer(self, layer, tokens, training):
        if self.backbone.remat and not isinstance(tokens, keras.KerasTensor):
            return _rematerialized(layer, training, None)(tokens)
        return layer(tokens, training=training)

    def call(self, inputs, training=None, patch_mask=None):
        features = self._features(inputs)
        mask = (self.patch_masking(features) if patch_mask is None
                else ops.cast(patch_mask, "bool"))
        masked, visible = split_mask(mask, self.num_masked)
        targets = _gather(self.target_patches(features), masked)

        def select(tokens, training=None):
            special, patches = tokens[:, :2], tokens[:, 2:]
            if self.visible_only:
                patches = _gather(patches, visible)
            else:
                table = self.backbone.embedding.position_embedding[:, 2:]
                fill = ops.cast(self.encoder_mask_token + table,
                                patches.dtype)
                patches = ops.where(ops.expand_dims(mask, -1), fill, patches)
            return ops.concatenate([special, patches], axis=1)

        backbone = self.backbone
        encoded = _encode(backbone.embedding, backbone.encoder_layers,
                          backbone.final_norm, features, training=training,
                          remat=backbone.remat,
                          patchout=select)["sequence_output"]
        tokens = self.decoder_embed(encoded)
        special, patches = tokens[:, :2], tokens[:, 2:]
        batch = ops.shape(tokens)[0]
        mask_token = ops.cast(self.decoder_mask_token, tokens.dtype)
        if self.visible_only:
            filler = ops.broadcast_to(
                mask_token, (batch, self.num_masked, self.decoder_dim))
            patches = ops.concatenate([patches, filler], axis=1)
            # Back to the grid's order: token k was patch `order[k]`.
            order = ops.concatenate([visible, masked], axis=1)
            patches = _gather(patches,
                              ops.cast(ops.argsort(order, axis=-1), "int32"))
        else:
            patches = ops.where(ops.expand_dims(mask, -1), mask_token,
                                patches)
        tokens = ops.concatenate([special, patches], axis=1)
        tokens = tokens + ops.cast(self.decoder_position_embedding,
                                   tokens.dtype)
        for block in self.decoder_blocks:
            tokens = self._layer(block, tokens, training)
        predicted = _gather(tokens[:, 2:], masked)
        normed = self.decoder_norm(predicted)
        outputs = {
            "mask": mask,
            "masked_indices": masked,
            "predictions": ops.cast(self.decoder_prediction(normed),
                                    "float32"),
            "targets": targets,
        }
        if self.contrastive_head is not None:
            # SSAST's InfoNCE: each masked patch's vector against every
            # masked patch of the same clip.
            outputs["contrastive_logits"] = ops.einsum(
                "bip,bjp->bij", self.contrastive_head(normed), targets)
        return outputs

    # === Loss ===

    @staticmethod
    def reconstruction_loss(outputs):
        """The mean squared error of predictions against targets.

        Args:
            outputs: the dict a call returns (`"predictions"` and
                `"targets"`, `(batch, masked, patch_size ** 2)`).

        Returns:
            A float32 scalar: the mean over the masked patches' values.
        """
        error = (ops.cast(outputs["predictions"], "float32")
                 - ops.cast(outputs["targets"], "float32"))
        return ops.mean(ops.square(error))

    @staticmethod
    def contrastive_loss(outputs):
        """SSAST's InfoNCE term: which masked patch is which.

        Args:
            outputs: the dict a call returns with `contrastive_weight > 0`
                (`"contrastive_logits"`, `(batch, masked, masked)`: row
                `i` scores masked patch `i`'s vector against the target
                patches of every masked patch of the clip).

        Returns:
            A float32 scalar: the cross-entropy of each row against its
            own patch (the diagonal), averaged; `log(masked)` at chance.
        """
        logits = ops.cast(outputs["contrastive_logits"], "float32")
        log_probabilities = ops.log_softmax(logits, axis=-1)
        count = ops.shape(logits)[-1]
        diagonal = ops.sum(log_probabilities * ops.eye(count), axis=-1)
        return -ops.mean(diagonal)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        """The training loss of `y_pred` (Keras' training hook).

        Labels (`y`) and sample weights are ignored: the targets are the
        inputs' own patches.

        Args:
            x: the inputs (unused).
            y: labels (ignored).
            y_pred: the outputs of the call.
            sample_weight: ignored.
            training: ignored.

        Returns:
            The float32 scalar loss: `reconstruction_loss`, plus
            `contrastive_weight` times `contrastive_loss` where it is
            above 0.
        """
        del x, y, sample_weight, training
        loss = self.reconstruction_loss(y_pred)
        if self.contrastive_head is not None:
            loss = loss + self.contrastive_weight * self.contrastive_loss(
                y_pred)
        for extra in self.losses:  # regularizers a user added
            loss = loss + ops.cast(ops.sum(extra), "float32")
        return loss

    # === Host-side helpers ===

    def reconstruct(self, inputs, mask=None):
        """Masks, reconstructs and returns everything as NumPy arrays.

        Runs the model once outside training (dropout off). For tests that
        compare backends, and for pictures of the spectrogram, the mask and
        the reconstruction.

        Args:
            inputs: what the model takes (see the class docstring).
            mask: None (a random mask from the layer's generator, which
                advances), or booleans `(batch, F' * T')`, True where a
                patch is masked, with exactly `num_masked` True per row;
                patch `f * T' + t` of the `(F', T')` grid
                (`backbone.token_grid`), frequency-major as the tokens.

        Returns:
            A dict of NumPy arrays:

            - `"mask"`: bool `(batch, F' * T')`, the mask used;
            - `"masked_indices"`: int32 `(batch, num_masked)`, the masked
              patches in ascending order (`np.nonzero` of each row);
            - `"predictions"`: float32 `(batch, num_masked,
              patch_size ** 2)`, the decoder's values for those patches,
              in normalised-patch units, pixel `i * patch_size + j` being
              mel bin `f * frequency_stride + i` and frame
              `t * time_stride + j` (`patch_indices`);
            - `"targets"`: the normalised patches they are compared with,
              the same shape (`target_patches` of the masked patches);
            - `"reconstruction_loss"`: float32 scalar, their mean squared
              error (`reconstruction_loss`);
            - with `contrastive_weight > 0`, `"contrastive_logits"`
              `(batch, num_masked, num_masked)` and `"contrastive_loss"`
              (`contrastive_loss`);
            - `"loss"`: the training loss on this mask, the reconstruction
              loss plus `contrastive_weight` times the contrastive one;
            - `"features"`: float32 `(batch, max_length, num_mel_bins)`,
              the model's input features;
            - `"reconstruction"`: the features with each masked patch
              replaced by its prediction, brought back to the patch's own
              mean and standard deviation (Audio-MAE's pictures); a value
              covered by several masked patches takes their mean, and one
              covered by none keeps the input's.

        Raises:
            ValueError: a mask of the wrong shape, or with a row that does
                not mask exactly `num_masked` patches.

        Examples:
            >>> backbone = ASTBackbone(hidden_dim=32, num_layers=1,
            ...     num_heads=4, intermediate_dim=64, max_length=64,
            ...     frequency_stride=16, time_stride=16)
            >>> pretrainer = ASTPretrainer(backbone, mask_ratio=0.5)
            >>> out = pretrainer.reconstruct(np.zeros((2, 64, 128), "f4"))
            >>> out["predictions"].shape, out["mask"].sum(axis=1).tolist()
            ((2, 16, 256), [16, 16])
        """
        features = ops.convert_to_numpy(self._features(inputs))
        if mask is not None:
            mask = np.asarray(mask).astype(bool)
            expected = (features.shape[0], self.patch_masking.num_patches)
            if mask.shape != expected:
                raise ValueError(
                    f"mask must have shape {expected} (batch, F' * T'); "
                    f"got {mask.shape}.")
            counts = mask.sum(axis=1)
            if (counts != self.num_masked).any():
                raise ValueError(
                    f"Each row of mask must mask exactly {self.num_masked} "
                    f"patches (mask_ratio {self.mask_ratio}); got "
                    f"{sorted(set(counts.tolist()))}.")
        outputs = self({"features": features}, training=False,
                       patch_mask=mask)
        outputs = {key: ops.convert_to_numpy(value)
                   for key, value in outputs.items()}
        losses = {"reconstruction_loss": self.reconstruction_loss(outputs)}
        if self.contrastive_head is not None:
            losses["contrastive_loss"] = self.contrastive_loss(outputs)
        outputs.update({key: ops.convert_to_numpy(value)
                        for key, value in losses.items()})
        outputs["loss"] = outputs["reconstruction_loss"] + (
            self.contrastive_weight * outputs.get("contrastive_loss", 0.0))
        outputs["features"] = features
        outputs["reconstruction"] = self._unpatch(
            features, outputs["masked_indices"], outputs["predictions"])
        return outputs

    def _unpatch(self, features, masked, predictions):
        """The features with the masked patches' predictions in place."""
        batch = features.shape[0]
        flat = features.reshape(batch, -1).astype("float64")
        index = self.patch_indices[masked]  # (batch, masked, pixels)
        patches = np.take_along_axis(
            flat, index.reshape(batch, -1), axis=1).reshape(index.shape)
        mean = patches.mean(axis=-1, keepdims=True)
        scale = np.sqrt(patches.var(axis=-1, keepdims=True) + NORM_EPSILON)
        values = predictions * scale + mean
        total = np.zeros_like(flat)
        count = np.zeros_like(flat)
        for row in range(batch):
            np.add.at(total[row], index[row].ravel(), values[row].ravel())
            np.add.at(count[row], index[row].ravel(), 1.0)
        out = np.where(count > 0, total / np.maximum(count, 1.0), flat)
        return out.reshape(features.shape).astype("float32")

    # === Training setup ===

    def compile(self, optimizer="auto", metrics=None, *,
                learning_rate=DEFAULT_LEARNING_RATE,
                weight_decay=DEFAULT_WEIGHT_DECAY, **kwargs):
        """`keras.Model.compile` with MAE's optimizer; the loss is fixed.

        `"auto"` picks AdamW as (Audio-)MAE pretrained: betas (0.9, 0.95),
        `weight_decay` on every weight but biases, LayerNorm scales and
        offsets, the special and mask tokens and the position embeddings,
        `learning_rate` (a float or a `keras.optimizers.schedules`
        schedule; MAE's base rate 1.5e-4 by default, which MAE scales by
        batch / 256) and gradient clipping to a global norm of 1. The loss
        is always the model's own (`compute_loss`: the reconstruction
        loss, plus the weighted InfoNCE term where asked), reported as
        `"loss"`.

        Args:
            optimizer: a `keras.optimizers.Optimizer` or its name, or
                `"auto"` (see above).
            metrics: optional Keras metrics of `(y, y_pred)` (rarely
                useful: `y` is whatever labels the dataset yields).
            learning_rate: the learning rate of the `"auto"` optimizer;
                ignored with another optimizer.
            weight_decay: the weight decay of the `"auto"` optimizer.
            **kwargs: passed to `keras.Model.compile` (e.g.
                `jit_compile`, `steps_per_execution`).

        Raises:
            ValueError: a `loss` is given (the loss is the model's own).

        Examples:
            ```python
            pretrainer.compile(learning_rate=1e-3)
            ```
        """
        if kwargs.get("loss") is not None:
            raise ValueError(
                "ASTPretrainer's loss is its reconstruction loss; compile "
                "takes no loss.")
        kwargs.pop("loss", None)
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                learning_rate=learning_rate, beta_1=0.9, beta_2=0.95,
                weight_decay=weight_decay, global_clipnorm=1.0)
            optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # === Saving ===

    def save_to_preset(self, preset_dir):
        """Writes the pretrained backbone as an ordinary backbone preset.

        The decoder and the mask tokens are not saved: what pretraining
        leaves is the backbone. `ASTBackbone.from_preset(preset_dir)`,
        `ASTClassifier.from_preset(preset_dir, num_classes=...)` and
        `keras-ast train --preset` read the folder. The preset records
        `"mean"` as the pooling of a new head on it: masked patch
        modelling never trains the [CLS] and distillation tokens, so a head
        pools the patch tokens unless told otherwise.

        Args:
            preset_dir: the folder to write (atomically).

        Examples:
            ```python
            pretrainer.save_to_preset("runs/pretrain/preset")
            backbone = keras_ast.ASTBackbone.from_preset(
                "runs/pretrain/preset")
            ```
        """
        preset_io.save_preset(preset_dir, backbone=self.backbone,
                              pooling="mean")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessor": keras.saving.serialize_keras_object(
                self.preprocessor),
            "mask_ratio": self.mask_ratio,
            "masking": self.patch_masking.masking,
            "block_size": self.block_size,
            "visible_only": self.visible_only,
            "decoder_dim": self.decoder_dim,
            "decoder_layers": self.decoder_layers,
            "decoder_heads": self.decoder_heads,
            "contrastive_weight": self.contrastive_weight,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key])
        return cls(**config)
