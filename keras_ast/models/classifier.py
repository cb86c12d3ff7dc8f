"""`ASTClassifier`: an AST backbone with a classification head."""

import keras
from keras import ops

from keras_ast.inference import classify as inference
from keras_ast.inference.waveforms import host_inputs
from keras_ast.models.audio_converter import ASTAudioConverter
from keras_ast.models.audio_converter import check_preprocessor
from keras_ast.models.audio_converter import task_features
from keras_ast.models.backbone import ASTBackbone
from keras_ast.models.backbone import check_pooling
from keras_ast.models.backbone import check_token_keep
from keras_ast.models.losses import SoftmaxAccuracy
from keras_ast.models.losses import SoftmaxCrossentropy
from keras_ast.presets import io as preset_io
from keras_ast.presets.builtin import BUILTIN_PRESETS

# AdamW as the AST authors fine-tuned (betas, weight decay), with gradient
# clipping, which keeps training from scratch stable too.
DEFAULT_LEARNING_RATE = 5e-5


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTClassifier(keras.Model):
    """Audio classifier: optional feature converter, AST backbone, head.

    The head is the reference's: LayerNorm then Dense on the pooled output
    (`pooling`, below). With a `preprocessor` the model takes raw 16 kHz
    waveforms and computes features on the device, so `predict`, `fit`
    and exported SavedModels work on audio. Without one it takes features
    `(batch, max_length, num_mel_bins)`.

    The model returns logits (float32, also under mixed precision).
    `multi_label=True` (AudioSet) means independent sigmoid scores and
    binary cross-entropy; `False` means softmax and cross-entropy over
    integer labels (or soft one-hot rows, as mixup makes).
    `predict_scores` applies the matching activation. The classifier comes
    compiled with the defaults of `compile()`, so `fit` works at once.

    Args:
        backbone: an `ASTBackbone`.
        num_classes: output units.
        preprocessor: an `ASTAudioConverter`, or `None` for feature inputs.
        multi_label: whether classes are independent (see above).
        labels: optional list of `num_classes` class names.
        dropout: dropout rate before the head's Dense layer.
        augmenter: optional layer applied to the features in training
            only, e.g. `keras_ast.data.SpecAugment`.
        token_keep: token pruning at inference, the share in `(0, 1]` of
            patch tokens kept (see below); 1.0 runs every token. Also an
            attribute (`classifier.token_keep = 0.5`).
        pooling: what the head reads (`ASTBackbone.pooled_output`):
            `"cls"`, the mean of the [CLS] and distillation tokens after
            the encoder's final LayerNorm, or `"mean"`, the mean of the
            patch tokens there. Also an attribute.

    Pooling: `"cls"` is the reference's, and what the MIT checkpoints'
    heads were trained on; their presets load with it. A self-supervised
    backbone (masked spectrogram patch modelling, as SSAST) never trains
    the [CLS] and distillation tokens, and SSAST fine-tunes on the mean
    of the patch tokens (`ft_avgtok` in its recipes): a head on such a
    backbone wants `"mean"`, which `from_preset` gives where the preset
    records it. With `"cls"` the last encoder layer computes
    only the two tokens the head reads; with `"mean"` it computes every
    token. Under patchout (training) or token pruning, `"mean"` averages
    the patch tokens kept. The pooling changes the logits, so exports and
    `embed` follow it.

    Token pruning (EViT, Liang et al. 2022; arXiv 2504.01690 for AST):
    outside training, after encoder layer `max(1, num_layers // 4)` (the
    3rd of 12) only `round(token_keep * F' * T')` patch tokens (at least
    1) go on to the later layers, those the [CLS] and distillation tokens
    attend to most in that layer (mean over the heads and the two rows).
    That layer: in the first layers the [CLS] attention is close to
    uniform and says little about which tokens matter, and those works
    prune from the 4th layer on; pruning once keeps the token count
    static, so the SavedModel, ONNX and LiteRT exports take it, and
    pruning at the first informative layer saves the most for a given
    share. A backbone of one layer has no later layer to prune for. In
    training every token runs (`fit` ignores `token_keep`); 1.0 takes
    the unpruned computation, with the same logits.

    Raises:
        ValueError: `num_classes` below 1, `labels` not `num_classes`
            long, `token_keep` outside `(0, 1]`, an unknown `pooling`,
            or a preprocessor whose `max_length` or `num_mel_bins` is not
            the backbone's.

    Call inputs: waveforms `(batch, samples)` (or features without a
    preprocessor), or a dict `{"waveforms": ..., "lengths": ...}` for
    batches of clips of different lengths (zero-padded, with each clip's
    sample count). `predict` also takes a list of 1-D clips.

    Examples:
        >>> backbone = ASTBackbone(hidden_dim=64, num_layers=2, num_heads=4,
        ...                        intermediate_dim=128, max_length=128)
        >>> classifier = ASTClassifier(backbone, num_classes=3,
        ...     preprocessor=ASTAudioConverter(max_length=128),
        ...     labels=["yes", "no", "up"])
        >>> waveforms = np.zeros((2, 16000), "float32")
        >>> classifier.predict(waveforms, verbose=0).shape
        (2, 3)
    """

    # Built-in preset names -> hub repository, description, size, score.
    presets = BUILTIN_PRESETS
    # What `from_preset` builds the parts with.
    backbone_cls = ASTBackbone
    preprocessor_cls = ASTAudioConverter

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        multi_label=False,
        labels=None,
        dropout=0.0,
        augmenter=None,
        token_keep=1.0,
        pooling="cls",
        **kwargs,
    ):
        kwargs.setdefault("dtype", backbone.dtype_policy)
        super().__init__(**kwargs)
        check_token_keep(token_keep)
        check_pooling(pooling)
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        if labels is not None:
            labels = [str(label) for label in labels]
            if len(labels) != num_classes:
                raise ValueError(
                    f"Got {len(labels)} labels for {num_classes} classes."
                )
        check_preprocessor(preprocessor, backbone)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.num_classes = num_classes
        self.multi_label = bool(multi_label)
        self.labels = labels
        self.dropout = dropout
        self.augmenter = augmenter
        self._token_keep = float(token_keep)
        self._pooling = pooling
        # The head runs in float32: its LayerNorm and the logits it feeds to
        # sigmoid / softmax are where bfloat16 hurts.
        self.head_norm = keras.layers.LayerNormalization(
            epsilon=backbone.layer_norm_epsilon, dtype="float32",
            name="head_layernorm",
        )
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.head_dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype="float32",
            name="head_dense",
        )
        self.head_norm.build((None, backbone.hidden_dim))
        self.head_dense.build((None, backbone.hidden_dim))
        self.built = True
        # A task comes ready to `fit` (the KerasHub convention).
        self.compile()

    def call(self, inputs, training=None):
        features = task_features(inputs, self.preprocessor, "classifier")
        if self.augmenter is not None and training:
            features = self.augmenter(features, training=training)
        pooled = self.backbone.pooled_output(
            features, training=training,
            token_keep=None if self.token_keep == 1.0 else self.token_keep,
            pooling=self.pooling)
        x = self.head_norm(pooled)
        x = self.head_dropout(x, training=training)
        return self.head_dense(x)

    @property
    def token_keep(self):
        """The share of patch tokens kept at inference, in `(0, 1]`.

        Setting it checks the value and drops the compiled predict
        function, so the next `predict` runs with it. See the class
        docstring (token pruning).
        """
        return self._token_keep

    @token_keep.setter
    def token_keep(self, value):
        check_token_keep(value)
        self._token_keep = float(value)
        self.predict_function = None

    @property
    def pooling(self):
        """What the head reads: `"cls"` or `"mean"` (the class docstring).

        Setting it checks the value and drops the compiled train, test and
        predict functions, so the next `fit`, `evaluate` or `predict` runs
        with it.
        """
        return self._pooling

    @pooling.setter
    def pooling(self, value):
        check_pooling(value)
        self._pooling = value
        self.train_function = None
        self.test_function = None
        self.predict_function = None

    def scores(self, logits):
        """Sigmoid (multi-label) or softmax (single-label) of logits.

        Args:
            logits: the model's outputs, `(batch, num_classes)`.

        Returns:
            float32 scores of the same shape, a backend tensor.
        """
        logits = ops.cast(logits, "float32")
        if self.multi_label:
            return ops.sigmoid(logits)
        return ops.softmax(logits, axis=-1)

    def predict(self, x, batch_size=None, verbose="auto", steps=None,
                callbacks=None, sampling_rate=None):
        """Logits for waveforms: an array, a list of clips or a dataset.

        Host arrays follow the rules of `keras_ast.inference.waveforms`
        (mono, integer PCM scaled, finite, not empty; `sampling_rate`
        checked when given); a list of 1-D clips of different lengths is
        padded and each clip scored as if alone. A clip longer than the
        model's input is cut to it, with a warning.

        Args:
            x: waveforms `(batch, samples)` or one clip `(samples,)`, a
                list of 1-D clips of any lengths, a dict `{"waveforms":
                ..., "lengths": ...}`, a `tf.data.Dataset` or a generator;
                features instead for a model without a preprocessor.
            batch_size: clips per model call (Keras' default: 32).
            verbose: `"auto"`, 0, 1 or 2, as `keras.Model.predict`.
            steps: batches to draw from a dataset or generator (None:
                until it ends).
            callbacks: `keras.callbacks.Callback`s to call.
            sampling_rate: the rate of host arrays, checked against the
                model's; None takes them to be at the model's rate.

        Returns:
            NumPy logits `(batch, num_classes)`, float32.

        Raises:
            ValueError: host audio the rules refuse, or `sampling_rate`
                other than the model's.
        """
        x = host_inputs(x, self.preprocessor, sampling_rate)
        return super().predict(x, batch_size=batch_size, verbose=verbose,
                               steps=steps, callbacks=callbacks)

    def classify(self, inputs, top_k=5, threshold=None, batch_size=32,
                 sampling_rate=None, skip_errors=False, token_keep=None):
        """The labels of each clip or file, best first.

        Scores are sigmoid for a multi-label model (AudioSet: independent
        classes) and softmax for a single-label one. A clip longer than
        the model's input is classified on its start, with a warning.

        Args:
            inputs: a path, a 1-D clip, a `(batch, samples)` array, or a
                list of paths and clips (any lengths). Files are decoded
                (`keras_ast.load_audio`: mono, resampled) on threads, ahead
                of the model.
            top_k: labels per input, at least 1 (None: no limit).
            threshold: keep the labels scoring at least this instead (still
                at most `top_k` when both are given).
            batch_size: clips per model call.
            sampling_rate: the rate of array inputs, which must be the
                model's (`keras_ast.resample` converts); arrays without it
                are taken to be at the model's rate, with a warning.
            skip_errors: skip the files that do not decode instead of
                raising, and return them too (see Returns).
            token_keep: token pruning for this call, a share in `(0, 1]`
                (None: the classifier's `token_keep`, which is restored
                afterwards).

        Returns:
            For one input, a list of `(label, score)` sorted by score; for
            a list or batch, one such list per input. With `skip_errors`,
            `(results, skipped)`: `results` as above with None in place of
            each skipped file, and `skipped` a list of `(path, reason)`,
            in the inputs' order.

        Raises:
            keras_ast.data.audio_io.AudioDecodeError: (a `ValueError`) a
                file does not decode, without `skip_errors`.
            ValueError: `top_k`, `sampling_rate`, `token_keep` or an array
                is refused (see `keras_ast.inference.waveforms`).

        Examples:
            ```python
            classifier = keras_ast.ASTClassifier.from_preset(
                "ast_audioset_10_10_0.4593")
            classifier.classify("dog.wav", top_k=3)
            # [("Dog", ...), ("Animal", ...), ("Bark", ...)]
            waveform = keras_ast.load_audio("dog.wav", sampling_rate=16000)
            classifier.classify(waveform, sampling_rate=16000)
            results, skipped = classifier.classify(
                ["a.wav", "b.flac"], skip_errors=True)
            ```
        """
        return inference.classify(self, inputs, top_k=top_k,
                                  threshold=threshold, batch_size=batch_size,
                                  sampling_rate=sampling_rate,
                                  skip_errors=skip_errors,
                                  token_keep=token_keep)

    def tag(self, inputs, window_seconds=None, hop_seconds=None, top_k=3,
            threshold=0.3, median_filter=1, batch_size=32,
            sampling_rate=None, skip_errors=False, token_keep=None):
        """Timelines of long recordings: scores per window, merged events.

        Each recording is cut into windows (the model's input length by
        default) every `hop_seconds` (half a window by default); the
        windows of consecutive recordings are scored together in batches.
        A window votes for a class among its `top_k` that scores at least
        `threshold`; consecutive votes merge into an event (see
        `keras_ast.inference.timeline`). Tagging N seconds costs about
        N / hop windows.

        Args:
            inputs: as `classify`.
            window_seconds: window length (at most the model's input).
            hop_seconds: time between window starts; longer than the
                window leaves gaps, which no event spans.
            top_k: classes per window that may vote, at least 1.
            threshold: the lowest score that votes.
            median_filter: odd number of windows to median-filter the
                scores over before voting (1: none).
            batch_size: windows per model call.
            sampling_rate: as `classify`'s.
            skip_errors: as `classify`'s.
            token_keep: as `classify`'s.

        Returns:
            A `keras_ast.inference.timeline.Timeline` per input (one for
            one input); with `skip_errors`, `(timelines, skipped)` as
            `classify`'s.

        Raises:
            keras_ast.data.audio_io.AudioDecodeError: as `classify`.
            ValueError: as `classify`, or a window longer than the model's
                input.

        Examples:
            ```python
            classifier = keras_ast.ASTClassifier.from_preset(
                "ast_audioset_10_10_0.4593")
            timeline = classifier.tag("street.flac", hop_seconds=2.5)
            for event in timeline.events:
                print(event.label, event.onset, event.offset)
            ```
        """
        return inference.tag(self, inputs, window_seconds=window_seconds,
                             hop_seconds=hop_seconds, top_k=top_k,
                             threshold=threshold,
                             median_filter_windows=median_filter,
                             batch_size=batch_size,
                             sampling_rate=sampling_rate,
                             skip_errors=skip_errors,
                             token_keep=token_keep)

    def embed(self, inputs, batch_size=32, sampling_rate=None,
              skip_errors=False):
        """Embeddings of clips or files: the backbone's pooled output.

        An embedding is what the head reads (`ASTBackbone.pooled_output`
        with the classifier's `pooling`): the mean of the [CLS] and
        distillation tokens, or of the patch tokens, after the encoder's
        final LayerNorm, before the head's LayerNorm and Dense: features
        for linear probes, similarity search or clustering. Inputs are
        read as `classify` reads them; a clip longer than the model's
        input is embedded on its start, with a warning.

        Args:
            inputs: as `classify`: a path, a 1-D clip, a `(batch,
                samples)` array, or a list of paths and clips.
            batch_size: clips per model call.
            sampling_rate: as `classify`'s.
            skip_errors: skip the files that do not decode instead of
                raising, and return them too (see Returns).

        Returns:
            float32 NumPy embeddings `(len(inputs), hidden_dim)`, or
            `(hidden_dim,)` for one input. With `skip_errors`,
            `(embeddings, skipped)`: the embeddings of the inputs that
            decoded, in order (None for one input that did not), and
            `skipped` a list of `(path, reason)`.

        Raises:
            keras_ast.data.audio_io.AudioDecodeError: as `classify`.
            ValueError: as `classify`, or a classifier without a
                preprocessor.

        Examples:
            ```python
            classifier = keras_ast.ASTClassifier.from_preset(
                "ast_audioset_10_10_0.4593")
            vectors = classifier.embed(["dog.wav", "cat.wav"])
            vectors.shape  # (2, 768)
            vectors, skipped = classifier.embed(
                ["dog.wav", "broken.wav"], skip_errors=True)
            ```
        """
        from keras_ast.inference import embed as embedding

        return embedding.embed(self, inputs, batch_size=batch_size,
                               sampling_rate=sampling_rate,
                               skip_errors=skip_errors)

    def predict_scores(self, x, sampling_rate=None, batch_size=None,
                       verbose="auto", **kwargs):
        """Probabilities: `predict` followed by sigmoid or softmax.

        Takes what `predict` takes, at the model's rate, as `predict` does
        (`classify` also takes files). `verbose="auto"` shows Keras'
        progress bar only when `x` (an array, a list of clips or a dict of
        them) makes more than one batch: a call on a few clips prints
        nothing.

        Args:
            x: as `predict`.
            sampling_rate: as `predict`'s.
            batch_size: clips per model call (None: Keras' default, 32).
            verbose: `"auto"` (see above), 0, 1 or 2.
            **kwargs: other `predict` arguments (`steps`, `callbacks`).

        Returns:
            float32 NumPy scores `(batch, num_classes)`.

        Raises:
            ValueError: as `predict`.

        Examples:
            ```python
            scores = classifier.predict_scores(
                [clip_a, clip_b], sampling_rate=16000)
            scores.shape  # (2, classifier.num_classes)
            ```
        """
        return inference.predict_scores(
            self, x, sampling_rate=sampling_rate, batch_size=batch_size,
            verbose=verbose, **kwargs)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", *,
                learning_rate=DEFAULT_LEARNING_RATE, **kwargs):
        """`keras.Model.compile` with defaults that suit AST.

        The defaults of the whole project live here (`keras-ast train`
        uses them too). `"auto"` picks:

        - optimizer: AdamW with betas (0.95, 0.999) and weight decay 5e-7
          as the AST authors used, `learning_rate` (a float or a
          `keras.optimizers.schedules` schedule) and gradient clipping to a
          global norm of 1;
        - loss: binary cross-entropy on logits (multi-label), or softmax
          cross-entropy that takes integer class ids or soft one-hot rows
          (single-label, `keras_ast.models.losses`);
        - metrics: multi-label AUC-PR named `map` (mAP-like), or accuracy.

        Args:
            optimizer: a `keras.optimizers.Optimizer` or its name, or
                `"auto"` (see above).
            loss: a Keras loss or its name, or `"auto"`.
            metrics: a list of Keras metrics or names, or `"auto"`.
            learning_rate: the learning rate of the `"auto"` optimizer;
                ignored with another optimizer.
            **kwargs: passed to `keras.Model.compile` (e.g.
                `jit_compile`, `steps_per_execution`).

        Examples:
            ```python
            classifier.compile(learning_rate=1e-4)
            ```
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                learning_rate=learning_rate, beta_1=0.95, beta_2=0.999,
                weight_decay=5e-7, global_clipnorm=1.0,
            )
        if loss == "auto":
            loss = (keras.losses.BinaryCrossentropy(from_logits=True)
                    if self.multi_label else SoftmaxCrossentropy())
        if metrics == "auto":
            if self.multi_label:
                metrics = [
                    keras.metrics.AUC(
                        curve="PR", multi_label=True, from_logits=True,
                        num_labels=self.num_classes, name="map",
                    )
                ]
            else:
                metrics = [SoftmaxAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        **kwargs)

    def compile_from_config(self, config):
        # `.keras` files store the compile arguments; ours are plain ones.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def export(self, filepath, format="tf_saved_model", verbose=None,
               input_signature=None, top_k=5, serving_version=None,
               **kwargs):
        """Exports the model with the spectrogram inside: audio in.

        Formats:

        - `"tf_saved_model"` (TensorFlow and JAX backends): the signatures
          `serve`, `serve_with_lengths`, `scores`, `classify` (top-k label
          strings) and `serve_wav` (encoded WAV bytes), with named outputs;
          see `keras_ast.export.saved_model`. `serving_version=1` writes TF
          Serving's layout (`filepath/1/`); `top_k` sets what `classify`
          returns.
        - `"onnx"` and `"litert"`: see `keras_ast.export.portable`.

        An explicit `input_signature` (or a features-in model) goes to
        `keras.Model.export` unchanged.

        Args:
            filepath: the output: a folder for `"tf_saved_model"`, a
                `.onnx` or `.tflite` file for the others.
            format: `"tf_saved_model"`, `"onnx"` or `"litert"`.
            verbose: whether Keras prints its export messages (ONNX and
                LiteRT; None: no).
            input_signature: None for the audio-in exports above, or the
                `keras.Model.export` signature to export with.
            top_k: labels the SavedModel's `classify` and `serve_wav`
                signatures return.
            serving_version: None, or a version number: the SavedModel is
                written to `filepath/<serving_version>/` for TF Serving.
            **kwargs: passed to the ONNX or LiteRT exporter (e.g.
                `batch_size`, `num_samples`, `quantization` for LiteRT),
                or to `keras.Model.export` with an `input_signature`.

        Returns:
            The SavedModel's folder, or the path of the ONNX or LiteRT
            file.

        Raises:
            ValueError: an unknown `format`, or a model the exporter
                refuses (ONNX and LiteRT need float32).
            NotImplementedError: the format is not available on this
                backend (SavedModel: TensorFlow and JAX; LiteRT:
                TensorFlow; ONNX: TensorFlow, or torch with fixed shapes).

        Examples:
            ```python
            classifier.export("models/ast", serving_version=1)
            classifier.export("ast.onnx", format="onnx")
            ```
        """
        if input_signature is None and self.preprocessor is None:
            input_signature = [keras.InputSpec(
                shape=(None, self.backbone.max_length,
                       self.backbone.num_mel_bins), dtype="float32")]
        if input_signature is not None:
            return super().export(filepath, format=format, verbose=verbose,
                                  input_signature=input_signature, **kwargs)
        if format == "tf_saved_model":
            from keras_ast.export.saved_model import export_saved_model

            return export_saved_model(self, filepath, top_k=top_k,
                                      serving_version=serving_version)
        if format in ("onnx", "litert"):
            from keras_ast.export import portable as portable_export

            export = getattr(portable_export, f"export_{format}")
            return export(self, filepath, verbose=bool(verbose), **kwargs)
        raise ValueError(
            f"Unknown export format {format!r}: use 'tf_saved_model', "
            "'onnx' or 'litert'."
        )

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessor": keras.saving.serialize_keras_object(
                self.preprocessor
            ),
            "num_classes": self.num_classes,
            "multi_label": self.multi_label,
            "labels": self.labels,
            "dropout": self.dropout,
            "augmenter": keras.saving.serialize_keras_object(self.augmenter),
            "token_keep": self.token_keep,
            "pooling": self.pooling,
        }
        # The head's; the backbone's config holds its own.
        quantization = preset_io.quantization_of(self, skip=[self.backbone])
        if quantization:  # a float head's config: the arguments alone
            config["quantization"] = quantization
        return config

    @classmethod
    def from_config(cls, config):
        # Registers SpecAugment, the usual augmenter, for deserialization.
        import keras_ast.data.spec_augment  # noqa: F401

        config = dict(config)
        for key in ("backbone", "preprocessor", "augmenter"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key]
                )
        quantization = config.pop("quantization", None)
        classifier = cls(**config)
        preset_io.quantize_like(classifier, quantization,
                                skip=[classifier.backbone])
        return classifier

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Quantizes the weights of the Dense layers (Keras' `quantize`).

        Keras' `Model.quantize` offers every layer; the others (norms,
        dropout, the patch convolution, the converter) only warn that they
        cannot be quantized. Without `filters`, only Dense layers are
        offered (`keras_ast.presets.io.is_dense`): the backbone's and the
        head's. `save_to_preset` and `.keras` files keep the quantization
        where the backbone's Dense layers are quantized alike, and the
        head's.

        Args:
            mode: `"int8"`, `"int4"`, `"float8"`, `"gptq"` or `"awq"`
                (optional with `config`).
            config: an optional `keras.quantizers.QuantizationConfig`.
            filters: Keras' `filters` (a regex, a list of them, or a
                callable taking a layer); None: the Dense layers.
            **kwargs: passed to Keras' `Model.quantize`.

        Returns:
            None; the classifier is quantized in place, and its compiled
            functions rebuilt on their next use.

        Raises:
            ValueError: an unknown mode, invalid `filters`, or a layer
                already quantized (from Keras).

        Examples:
            >>> backbone = ASTBackbone(hidden_dim=64, num_layers=2,
            ...     num_heads=4, intermediate_dim=128, max_length=128)
            >>> classifier = ASTClassifier(backbone, num_classes=3)
            >>> classifier.quantize("int8")
            >>> classifier.head_dense.quantization_mode
            'int8'
        """
        if filters is None:
            filters = preset_io.is_dense
        super().quantize(mode, config=config, filters=filters, **kwargs)

    @classmethod
    def from_preset(cls, preset, load_weights=True, num_classes=None,
                    labels=None, multi_label=None, preprocessor=True,
                    augmenter=None, token_keep=1.0, pooling=None, **kwargs):
        """Builds a classifier from a preset, with its weights, compiled.

        Args:
            preset: a built-in name (`ASTClassifier.presets`), a hub id
                (`owner/repo` or `hf://owner/repo`) or a local directory,
                in the Hugging Face format or written by `save_to_preset`.
            load_weights: whether to load the weights or start random.
            num_classes: a new head size; the head is then freshly
                initialised (the stored one is not read) and the stored
                labels dropped (unless `labels`).
            labels: class names, replacing the stored ones; other names
                than the stored ones also mean a fresh head.
            multi_label: overrides the preset's setting.
            preprocessor: `True` to attach the preset's converter, `False`
                for a features-in model, or an `ASTAudioConverter`.
            augmenter: optional layer applied to the features in training
                only (the constructor's), e.g. `keras_ast.data.SpecAugment`.
            token_keep: token pruning at inference (the constructor's).
            pooling: `"cls"` or `"mean"` (the constructor's). None: the
                stored head's (`"cls"` for the MIT checkpoints and for
                presets saved before pooling was recorded); for a new head,
                the stored head's too, else the pooling the preset records
                for new heads (`"mean"` for a self-supervised backbone,
                see `keras_ast.presets.io.save_preset`), else `"cls"`.
            **kwargs: backbone overrides (e.g. `dtype="mixed_bfloat16"`,
                `patchout_time`, or `max_length`, which adapts the position
                embeddings).

        Returns:
            A compiled `ASTClassifier`.

        Raises:
            ValueError: the preset has no classification head and no
                `num_classes` is given, an unknown `pooling`, its
                `config.json` is neither a keras_ast nor a `transformers`
                AST config, or the parts disagree (as the constructor).
            FileNotFoundError: the preset is neither a built-in name, a
                reachable hub repository nor a folder
                (`keras_ast.presets.io.PresetNotFoundError`), or the folder
                has no `config.json`.

        Examples:
            ```python
            classifier = keras_ast.ASTClassifier.from_preset(
                "MIT/ast-finetuned-speech-commands-v2")
            # A new 10-class head on the AudioSet backbone:
            classifier = keras_ast.ASTClassifier.from_preset(
                "ast_audioset_10_10_0.4593", num_classes=10)
            ```
        """
        loader = preset_io.load_preset(preset)
        head = loader.head_config()
        if pooling is None:
            pooling = (head.get("pooling", "cls")
                       if head.get("num_classes") is not None
                       else loader.default_pooling() or "cls")
        check_pooling(pooling)
        new_head = num_classes is not None and (
            num_classes != head.get("num_classes")
            # Same size, other classes: the stored head means nothing here.
            or (labels is not None and head.get("labels") is not None
                and list(labels) != head["labels"])
        )
        if new_head or head.get("num_classes") is None:
            if num_classes is None:
                raise ValueError(
                    f"The preset {preset} has no classification head; "
                    "pass num_classes=..."
                )
            head = {"num_classes": num_classes,
                    "multi_label": head.get("multi_label", False)}
        if labels is not None:
            head["labels"] = list(labels)
        if multi_label is not None:
            head["multi_label"] = multi_label
        if augmenter is not None:
            head["augmenter"] = augmenter
        head["token_keep"] = token_keep
        head["pooling"] = pooling
        return loader.load_classifier(
            cls, load_weights=load_weights, load_task_weights=not new_head,
            preprocessor=preprocessor, head=head, **kwargs,
        )

    def save_to_preset(self, preset_dir):
        """Writes config, weights, converter config and labels to a folder.

        The folder appears whole or not at all; `from_preset` reads it.

        Args:
            preset_dir: the folder to write.

        Examples:
            ```python
            classifier.save_to_preset("runs/sc/preset")
            classifier = keras_ast.ASTClassifier.from_preset("runs/sc/preset")
            ```
        """
        preset_io.save_preset(preset_dir, backbone=self.backbone,
                              classifier=self)
