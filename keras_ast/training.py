"""Fine-tuning AST on shards: the `keras-ast train` recipe.

The defaults follow the AST authors (Adam with betas (0.95, 0.999) and a
small weight decay, their Speech Commands learning rate, warm-up then
decay, SpecAugment and mixup on), with masks mild enough and gradient
clipping so that a randomly initialised model also trains: the learning
test trains a small AST from scratch on spoken keywords with them.
"""

import json
import os

import keras

from keras_ast.classifier import ASTClassifier
from keras_ast.data import pipelines
from keras_ast.data.index import read_info

METRICS_FILE = "metrics.json"


class MetricsFile(keras.callbacks.Callback):
    """Writes every epoch's logs to a JSON file, atomically."""

    def __init__(self, path, history=None):
        super().__init__()
        self.path = path
        self.history = list(history or [])

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.history = [h for h in self.history if h["epoch"] < epoch + 1]
        self.history.append(entry)
        staging = self.path + ".tmp"
        with open(staging, "w", encoding="utf-8") as f:
            json.dump(self.history, f, indent=2)
        os.replace(staging, self.path)


def _datasets(path, batch_size, training, clip_seconds, seed, one_hot,
              mixup_alpha, worker_count):
    info = read_info(path)
    common = dict(training=training, clip_seconds=clip_seconds, seed=seed,
                  one_hot=one_hot, mixup_alpha=mixup_alpha)
    # Training streams are endless, reshuffled at every pass, and `fit`
    # counts steps_per_epoch: Keras would restart a finite Grain stream in
    # the same order, and warns when a tf.data stream of unknown length
    # ends.
    if info["record_format"] == "tfrecord":
        return pipelines.tf_dataset(path, batch_size, repeat=training,
                                    **common)
    return pipelines.grain_dataset(path, batch_size,
                                   num_workers=worker_count,
                                   num_epochs=None if training else 1,
                                   **common)


def _schedule(learning_rate, steps, warmup_fraction):
    warmup = max(1, int(steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 100,
        decay_steps=max(1, steps - warmup),
        warmup_target=learning_rate,
        warmup_steps=warmup,
        alpha=0.01,
    )


def _steps_per_epoch(info, batch_size):
    from keras_ast.data.pipelines import _process_shard

    _, count = _process_shard()
    return max(1, info["num_examples"] // count // batch_size)


def train(preset, train, output, validation=None, epochs=10, batch_size=16,
          learning_rate=2.5e-4, max_length=None, mixed_precision=False,
          spec_augment=(24, None), mixup_alpha=10.0, warmup_fraction=0.1,
          seed=0, worker_count=0, data_parallel=None, callbacks=None,
          verbose="auto"):
    """Fine-tunes a preset on a shard directory and saves the result.

    Args:
        preset: anything `ASTClassifier.from_preset` takes.
        train: a training shard directory (`make_shards`).
        output: where checkpoints, `metrics.json`, the backup used to
            resume, and the final preset (`output/preset`) go.
        validation: a validation shard directory (optional).
        epochs: passes over the training data.
        batch_size: clips per step (global, over all devices).
        learning_rate: peak learning rate (after warm-up). About 1e-3
            trains a small model from scratch faster; pretrained AudioSet
            weights on a small set want 1e-5 to 5e-5.
        max_length: input frames; the position embeddings are adapted and
            clips cut to match. Defaults to the preset's.
        mixed_precision: train under `mixed_bfloat16`.
        spec_augment: `(frequency, time)` widest masks, in mel bins and
            frames, `None` to turn it off; a `None` time width means a
            tenth of the input frames. The default is the authors' ESC-50
            setting, milder than their AudioSet and Speech Commands ones
            (48 bins, 19-37% of the frames), which slowed a small model
            trained from scratch (52% against 75% on unheard voices of
            the keyword set after 15 epochs at learning rate 1e-3).
        mixup_alpha: mixup's Beta parameter; `None` turns mixup off.
        warmup_fraction: share of the steps spent warming up.
        seed: shuffling, cropping and augmentation seed.
        worker_count: Grain decoding processes (ArrayRecord shards).
        data_parallel: split batches over all local devices with
            `keras.distribution.DataParallel` (JAX); default: when there
            are several.
        callbacks: more Keras callbacks for `fit`.
        verbose: `fit`'s verbosity.

    Returns:
        The trained `ASTClassifier`; `output/preset` holds it.

    Example:
    >>> train("ast_speech_commands_v2", "shards/train", "runs/sc",
    ...       validation="shards/val", epochs=5)
    """
    from keras_ast.data.spec_augment import SpecAugment

    os.makedirs(output, exist_ok=True)
    info = read_info(train)
    keras.utils.set_random_seed(seed)
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    if data_parallel is None:
        data_parallel = (keras.config.backend() == "jax"
                         and len(keras.distribution.list_devices()) > 1)
    if data_parallel:
        keras.distribution.set_distribution(keras.distribution.DataParallel())

    overrides = {"max_length": max_length} if max_length else {}
    classifier = ASTClassifier.from_preset(
        preset, num_classes=len(info["labels"]), labels=info["labels"],
        multi_label=bool(info["multi_label"]), **overrides,
    )
    frames = classifier.backbone.max_length
    if spec_augment:
        frequency, time = spec_augment
        # Masked bins take the value of silence after normalisation, as in
        # the authors' loader (they masked before normalising).
        classifier.augmenter = SpecAugment.from_converter(
            classifier.preprocessor,
            freq_mask_param=frequency,
            time_mask_param=time if time is not None else max(1, frames // 10),
            seed=seed,
        )
    clip_seconds = classifier.preprocessor.num_samples / (
        classifier.preprocessor.sampling_rate)
    multi_label = classifier.multi_label
    one_hot = bool(mixup_alpha) and not multi_label
    train_data = _datasets(train, batch_size, True, clip_seconds, seed,
                           one_hot, mixup_alpha, worker_count)
    validation_data = None
    if validation:
        validation_data = _datasets(validation, batch_size, False,
                                    clip_seconds, seed, one_hot, None,
                                    worker_count)

    steps_per_epoch = _steps_per_epoch(info, batch_size)
    steps = steps_per_epoch * epochs
    optimizer = keras.optimizers.AdamW(
        learning_rate=_schedule(learning_rate, steps, warmup_fraction),
        beta_1=0.95, beta_2=0.999, weight_decay=5e-7, global_clipnorm=1.0,
    )
    if multi_label:
        loss = "auto"
        metrics = "auto"
    elif one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    else:
        loss, metrics = "auto", "auto"
    classifier.compile(optimizer=optimizer, loss=loss, metrics=metrics)

    metrics_path = os.path.join(output, METRICS_FILE)
    previous = []
    if os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            previous = json.load(f)
    callbacks = [
        # Resumes an interrupted run from its last finished epoch.
        keras.callbacks.BackupAndRestore(os.path.join(output, "backup")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(output, "checkpoints", "epoch_{epoch:03d}"
                         ".weights.h5"),
            save_weights_only=True,
        ),
        MetricsFile(metrics_path, previous),
    ] + list(callbacks or [])
    os.makedirs(os.path.join(output, "checkpoints"), exist_ok=True)
    classifier.fit(train_data, validation_data=validation_data,
                   epochs=epochs, callbacks=callbacks, verbose=verbose,
                   steps_per_epoch=steps_per_epoch,  # see `_datasets`
                   shuffle=False)  # the pipelines shuffle, with the seed
    classifier.save_to_preset(os.path.join(output, "preset"))
    return classifier
