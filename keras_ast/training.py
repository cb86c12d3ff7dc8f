"""Fine-tuning AST on shards: the `keras-ast train` recipe.

`train` builds a classifier from a preset, streams the shards into `fit`
with the recipe of a `TrainConfig` (`keras_ast.train_config`), writes a
checkpoint and `metrics.json` every epoch, resumes an interrupted run, and
saves the result as a preset. The optimizer, loss and metrics are
`ASTClassifier.compile()`'s defaults, with the recipe's learning-rate
schedule.
"""

import contextlib
import dataclasses
import os
import shutil

import keras

from keras_ast.classifier import ASTClassifier
from keras_ast.data import pipelines
from keras_ast.data.index import read_info
from keras_ast.files import read_json
from keras_ast.files import write_json
from keras_ast.train_config import TrainConfig

METRICS_FILE = "metrics.json"
PRESET_DIR = "preset"
BACKUP_DIR = "backup"
CHECKPOINT_DIR = "checkpoints"


class RunFinishedError(FileExistsError):
    """The output folder already holds a finished run."""


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
        write_json(self.path, self.history)


def _datasets(path, batch_size, training, clip_seconds, config, one_hot):
    info = read_info(path)
    mixup_alpha = config.mixup_alpha if training and config.mixup else None
    common = dict(training=training, clip_seconds=clip_seconds,
                  seed=config.seed, one_hot=one_hot, mixup_alpha=mixup_alpha,
                  mixup_probability=config.mixup_probability)
    # Training streams are endless, reshuffled at every pass, and `fit`
    # counts steps_per_epoch: Keras would restart a finite Grain stream in
    # the same order, and warns when a tf.data stream of unknown length
    # ends.
    if info["record_format"] == "tfrecord":
        return pipelines.tf_dataset(path, batch_size, repeat=training,
                                    **common)
    return pipelines.grain_dataset(path, batch_size,
                                   num_workers=config.num_workers,
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


def _distribution(config):
    """The distribution to train under (a scope), or a null context."""
    data_parallel = config.data_parallel
    if data_parallel is None:
        data_parallel = (keras.config.backend() == "jax"
                         and len(keras.distribution.list_devices()) > 1)
    if data_parallel:
        return keras.distribution.DataParallel().scope()
    return contextlib.nullcontext()


def _clear(output):
    """Removes what an earlier run wrote into `output` (and nothing else)."""
    for name in (PRESET_DIR, BACKUP_DIR, CHECKPOINT_DIR):
        shutil.rmtree(os.path.join(output, name), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(output, METRICS_FILE))


def _holds_files(path):
    return any(files for _, _, files in os.walk(path))


def train(preset, train, output, validation=None, config=None, *,
          callbacks=None, verbose="auto", overwrite=False, **settings):
    """Fine-tunes a preset on a shard directory and saves the result.

    Rerunning an interrupted run resumes it from its last finished epoch
    (`OUTPUT/backup`): the weights, the optimizer and the epoch count are
    restored; the data stream restarts at its first pass's order. A run
    that finished is not redone unless `overwrite`. Nothing global is
    changed for the caller, except the random seed (`config.seed`): the
    dtype policy goes to the model, and a distribution is scoped to the run.

    Args:
        preset: anything `ASTClassifier.from_preset` takes.
        train: a training shard directory (`keras_ast.data.make_shards`).
        output: where checkpoints, `metrics.json`, the backup used to
            resume, and the final preset (`OUTPUT/preset`) go.
        validation: a validation shard directory (optional).
        config: a `TrainConfig` (default: the recipe's defaults).
        callbacks: more Keras callbacks for `fit`.
        verbose: `fit`'s verbosity.
        overwrite: train again over a finished run in `output`.
        **settings: `TrainConfig` fields that replace those of `config`.

    Returns:
        The trained `ASTClassifier`; `OUTPUT/preset` holds it.

    Raises:
        RunFinishedError: `output` holds a finished run and not
            `overwrite`.

    Example:
    >>> train("ast_speech_commands_v2", "shards/train", "runs/sc",
    ...       validation="shards/val", epochs=5)
    """
    config = dataclasses.replace(config or TrainConfig(), **settings)
    output = os.fspath(output)
    final = os.path.join(output, PRESET_DIR)
    if os.path.exists(final):
        if not overwrite:
            raise RunFinishedError(
                f"{output} holds a finished run ({final}); nothing to do. "
                "Train again with overwrite=True, or choose another output."
            )
        _clear(output)
    info = read_info(train)
    keras.utils.set_random_seed(config.seed)
    overrides = {"max_length": config.max_length} if config.max_length else {}
    if config.mixed_precision:
        overrides["dtype"] = "mixed_bfloat16"
    created = not os.path.exists(output)
    try:
        with _distribution(config):
            classifier = ASTClassifier.from_preset(
                preset, num_classes=len(info["labels"]),
                labels=info["labels"], multi_label=bool(info["multi_label"]),
                **overrides,
            )
            _fit(classifier, info, train, output, validation, config,
                 callbacks, verbose)
            classifier.save_to_preset(final)
    except BaseException:
        # A run that failed before writing anything leaves no folder.
        if created and os.path.isdir(output) and not _holds_files(output):
            shutil.rmtree(output, ignore_errors=True)
        raise
    return classifier


def _fit(classifier, info, train, output, validation, config, callbacks,
         verbose):
    from keras_ast.data.spec_augment import SpecAugment

    frames = classifier.backbone.max_length
    if config.spec_augment:
        # Masked bins take the value of silence after normalisation, as in
        # the authors' loader (they masked before normalising).
        classifier.augmenter = SpecAugment.from_converter(
            classifier.preprocessor,
            freq_mask_param=config.freq_mask,
            time_mask_param=config.time_mask or max(1, frames // 10),
            seed=config.seed,
        )
    clip_seconds = classifier.preprocessor.num_samples / (
        classifier.preprocessor.sampling_rate)
    one_hot = config.mixup and not classifier.multi_label
    train_data = _datasets(train, config.batch_size, True, clip_seconds,
                           config, one_hot)
    validation_data = None
    if validation:
        validation_data = _datasets(validation, config.batch_size, False,
                                    clip_seconds, config, one_hot)
    steps_per_epoch = _steps_per_epoch(info, config.batch_size)
    classifier.compile(learning_rate=_schedule(
        config.learning_rate, steps_per_epoch * config.epochs,
        config.warmup_fraction))

    os.makedirs(os.path.join(output, CHECKPOINT_DIR), exist_ok=True)
    metrics_path = os.path.join(output, METRICS_FILE)
    previous = read_json(metrics_path) if os.path.exists(metrics_path) else []
    callbacks = [
        # Resumes an interrupted run from its last finished epoch.
        keras.callbacks.BackupAndRestore(os.path.join(output, BACKUP_DIR)),
        keras.callbacks.ModelCheckpoint(
            os.path.join(output, CHECKPOINT_DIR,
                         "epoch_{epoch:03d}.weights.h5"),
            save_weights_only=True,
        ),
        MetricsFile(metrics_path, previous),
    ] + list(callbacks or [])
    classifier.fit(train_data, validation_data=validation_data,
                   epochs=config.epochs, callbacks=callbacks,
                   verbose=verbose,
                   steps_per_epoch=steps_per_epoch,  # see `_datasets`
                   shuffle=False)  # the pipelines shuffle, with the seed
