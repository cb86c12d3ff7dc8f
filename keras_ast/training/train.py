"""Fine-tuning AST on shards: the `keras-ast train` recipe.

`train` builds a classifier from a preset, streams the shards into `fit`
with the recipe of a `TrainConfig` (`keras_ast.training.config`), writes a
checkpoint (`EpochCheckpoints`), `metrics.json` and a backup (`Backup`)
every epoch, resumes an interrupted run from its backup (`restore`), and
saves the result as a preset. The optimizer, loss and metrics are
`ASTClassifier.compile()`'s defaults, with the recipe's learning-rate
schedule. With a validation set, the final model is evaluated on it
(`evaluate`, from `keras_ast.training.evaluate`) into
`OUTPUT/evaluation.json`.

Each shard directory's `dataset.json` is read once (`read_info`); the
pipelines (`keras_ast.data.pipelines.dataset_for`) and the evaluation are
handed the result. Messages (the epoch a run resumes from) go to this
module's logger; `keras-ast train` shows them.
"""

import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import tempfile
import warnings

import keras

from keras_ast.data.info import as_info
from keras_ast.data.pipelines import dataset_for
from keras_ast.data.pipelines import process_part
from keras_ast.data.spec_augment import SpecAugment
from keras_ast.models.audio_converter import ASTAudioConverter
from keras_ast.models.backbone import LORA_ATTENTION
from keras_ast.models.backbone import LORA_MLP
from keras_ast.models.classifier import ASTClassifier
from keras_ast.training.config import TrainConfig
from keras_ast.training.evaluate import REPORT_FILE as EVALUATION_FILE
from keras_ast.training.evaluate import evaluate
from keras_ast.utils.files import TEMP_PREFIX
from keras_ast.utils.files import atomic_path
from keras_ast.utils.files import read_json
from keras_ast.utils.files import sha256_file
from keras_ast.utils.files import write_json

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PRESET_DIR = "preset"
BEST_PRESET_DIR = "best_preset"
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


class EpochCheckpoints(keras.callbacks.Callback):
    """Saves `DIR/epoch_NNN.weights.h5` every epoch, keeping the last `keep`.

    A checkpoint holds the model's and the optimizer's weights
    (`save_weights`); it is written under a temporary name and renamed
    when whole, and only then are the older ones removed (those of later
    epochs too: a resumed run's lost epochs). `keep=0` writes none.

    Args:
        directory: the checkpoint folder (`OUTPUT/checkpoints`).
        keep: how many of the latest epochs' checkpoints to keep.
    """

    def __init__(self, directory, keep=1):
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        epoch += 1
        if self.keep:
            path = os.path.join(self.directory,
                                f"epoch_{epoch:03d}.weights.h5")
            with atomic_path(path, suffix=".weights.h5") as temp:
                self.model.save_weights(temp)
        kept = {f"epoch_{e:03d}.weights.h5"
                for e in range(epoch - self.keep + 1, epoch + 1)}
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            # Also the temporary files of a save that was killed.
            if name not in kept and (name.startswith(TEMP_PREFIX) or
                                     re.match(r"epoch_\d+\.weights\.h5$",
                                              name)):
                _remove(os.path.join(self.directory, name))


class BestPreset(keras.callbacks.Callback):
    """Saves the model as a preset whenever `monitor` reaches a new best.

    The best value so far comes from the earlier epochs' logs (`history`,
    as `metrics.json` holds them), so a resumed run keeps comparing with
    the epochs it did before. The preset is replaced atomically.

    Args:
        path: the preset directory (`OUTPUT/best_preset`).
        monitor: a key of the epoch logs, e.g. `"val_accuracy"`.
        history: the logs of finished epochs, `[{"epoch": 1, ...}, ...]`.
    """

    def __init__(self, path, monitor, history=()):
        super().__init__()
        self.path = path
        self.monitor = monitor
        # Losses fall, every other figure logged here (accuracy, mAP) rises.
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self.history = list(history)
        self.best = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.best is None:
            # Only the epochs before the one resumed from count.
            seen = [h[self.monitor] for h in self.history
                    if h["epoch"] <= epoch and self.monitor in h]
            self.best = max((self.sign * v for v in seen),
                            default=float("-inf"))

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise ValueError(
                f"monitor={self.monitor!r} is not logged; the logs hold "
                f"{sorted(logs or {})}.")
        value = self.sign * float(logs[self.monitor])
        if value > self.best:
            self.best = value
            self.model.save_to_preset(self.path)


def _monitor(config, classifier, validation):
    """The validated `config.monitor`, its default, or None."""
    metric = "map" if classifier.multi_label else "accuracy"
    known = ["loss", metric]
    if validation:
        known = [f"val_{name}" for name in known] + known
    if config.monitor is None:
        return f"val_{metric}" if validation else None
    if config.monitor not in known:
        raise ValueError(
            f"monitor={config.monitor!r} is not logged by this run; choose "
            f"one of {', '.join(known)}"
            + ("" if validation else " (val_* need validation data)") + ".")
    return config.monitor


def _process_index():
    """This process's index among the training processes (0 alone)."""
    return process_part()[0]


def _is_chief():
    """Whether this process writes the run's files (process 0 of N)."""
    return _process_index() == 0


def _initialize_processes(config):
    """Joins the other training processes (`config.num_processes` > 1)."""
    if config.num_processes <= 1:
        return
    if keras.config.backend() != "jax":
        raise ValueError(
            f"num_processes={config.num_processes}: training in several "
            "processes runs on the JAX backend only (KERAS_BACKEND=jax); "
            f"this is {keras.config.backend()}.")
    if not config.coordinator:
        raise ValueError(
            f"num_processes={config.num_processes} needs coordinator="
            "'HOST:PORT', the address of process 0.")
    if not 0 <= config.process_id < config.num_processes:
        raise ValueError(
            f"process_id={config.process_id} is not in 0 .. "
            f"{config.num_processes - 1}.")
    import jax

    if jax.distributed.is_initialized():
        return  # a caller (or an earlier run) already joined
    keras.distribution.initialize(config.coordinator, config.num_processes,
                                  config.process_id)


class Backup(keras.callbacks.Callback):
    """Backs up the training state at the end of every epoch, atomically.

    The state is the model's weights with the optimizer's
    (`save_weights`) as `DIR/epoch_NNN.weights.h5`, written under a
    temporary name and renamed when whole, then `DIR/epoch_NNN.json`
    (the epoch, the weights file's size and sha256), written last, the
    same way. Only then are the earlier backups removed: an interruption
    at any moment leaves the previous good backup, or the new one, whole.
    `restore` reads it back.

    Args:
        directory: this process's backup folder (`OUTPUT/backup`).
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        epoch += 1
        name = f"epoch_{epoch:03d}"
        weights = os.path.join(self.directory, name + ".weights.h5")
        metadata = os.path.join(self.directory, name + ".json")
        # A stale description of the file about to be replaced must not
        # vouch for it.
        with contextlib.suppress(FileNotFoundError):
            os.remove(metadata)
        with atomic_path(weights, suffix=".weights.h5") as temp:
            self.model.save_weights(temp)
        write_json(metadata, {"epoch": epoch,
                              "weights": os.path.basename(weights),
                              "size": os.path.getsize(weights),
                              "sha256": sha256_file(weights)})
        # The new backup is whole: everything else goes (earlier epochs,
        # an older keras-ast's files, temporary files of a killed save).
        for other in os.listdir(self.directory):
            if other not in (os.path.basename(weights),
                             os.path.basename(metadata)):
                _remove(os.path.join(self.directory, other))


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


# What `keras.callbacks.BackupAndRestore` left (earlier versions wrote
# the backup with it): no checksum, so it is only known to be whole once
# it has loaded.
LEGACY_WEIGHTS = "latest.weights.h5"
LEGACY_METADATA = "training_metadata.json"


def _backups(directory):
    """The backups in `directory`, newest first: `(epoch, weights file,
    metadata)`, with `metadata` None for a legacy backup."""
    found = []
    if not os.path.isdir(directory):
        return found
    for name in os.listdir(directory):
        if name.startswith("epoch_") and name.endswith(".json"):
            path = os.path.join(directory, name)
            try:
                metadata = read_json(path)
                epoch = int(metadata["epoch"])
                weights = os.path.join(directory, metadata["weights"])
            except (OSError, ValueError, KeyError, TypeError) as error:
                _warn_damaged(path, f"unreadable ({error})")
                continue
            found.append((epoch, weights, metadata))
    legacy = os.path.join(directory, LEGACY_WEIGHTS)
    if os.path.exists(legacy):
        try:
            epoch = int(read_json(os.path.join(
                directory, LEGACY_METADATA))["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            _warn_damaged(legacy, f"its {LEGACY_METADATA} is unreadable "
                          f"({error})")
        else:
            found.append((epoch, legacy, None))
    return sorted(found, key=lambda backup: backup[0], reverse=True)


def _warn_damaged(path, why):
    warnings.warn(f"The backup {path} is damaged: {why}; it is not used.",
                  UserWarning, stacklevel=3)


def _is_whole(weights, metadata):
    """Whether `weights` is the file `metadata` describes (None if the
    backup has no description to check it against)."""
    if metadata is None:
        return None
    if not os.path.exists(weights):
        _warn_damaged(weights, "the file is missing")
        return False
    size = os.path.getsize(weights)
    if size != metadata.get("size"):
        _warn_damaged(weights, f"{size} bytes, {metadata.get('size')} "
                      "were written")
        return False
    if sha256_file(weights) != metadata.get("sha256"):
        _warn_damaged(weights, "its sha256 is not the one written")
        return False
    return True


def restore(model, directory):
    """Restores the newest whole backup that `Backup` wrote to `directory`.

    A damaged backup (a size or sha256 other than written, or, for a
    legacy backup, one that fails to load) is skipped with a warning, for
    the one before it; without any, the model is left as it was (with a
    warning if there were damaged ones).

    Args:
        model: the compiled model, as `Backup` saw it.
        directory: the backup folder.

    Returns:
        The number of epochs the restored state had finished (0: none).

    Raises:
        ValueError: a whole backup does not fit `model` (another model,
            or other settings, wrote it).
    """
    backups = _backups(directory)
    for epoch, weights, metadata in backups:
        whole = _is_whole(weights, metadata)
        if whole is False:
            continue
        if not model.optimizer.built:
            # The backup holds the optimizer's state: it must exist.
            model.optimizer.build(model.trainable_variables)
        if whole:
            try:
                model.load_weights(weights)
            except Exception as error:  # Keras raises several kinds
                raise ValueError(
                    f"The backup {weights} does not fit this model: it was "
                    "written by a run with another model or other "
                    f"settings ({error}). Rerun with that run's settings, "
                    "or start afresh with --overwrite (overwrite=True)."
                ) from error
            return epoch
        # A legacy backup: a failed load may have set some variables.
        variables = list(model.variables) + list(model.optimizer.variables)
        values = [keras.ops.convert_to_numpy(v) for v in variables]
        try:
            model.load_weights(weights)
            return epoch
        except Exception as error:  # a truncated file: OSError, ValueError
            _warn_damaged(weights, f"it does not load ({error})")
            for variable, value in zip(variables, values):
                variable.assign(value)
    if backups:
        warnings.warn(f"No whole backup is left in {directory}: training "
                      "starts afresh, from epoch 1.", UserWarning,
                      stacklevel=2)
    return 0


def _backup_dir():
    # Every process restores from its own backup; process 0's is the usual
    # one, the others' sit beside it, so no two write the same file.
    index = _process_index()
    return BACKUP_DIR if index == 0 else f"{BACKUP_DIR}_process_{index}"


def _datasets(info, batch_size, training, clip_seconds, config, one_hot,
              start_example=0):
    """The training or validation stream of a shard set's `DatasetInfo`."""
    mixup_alpha = config.mixup_alpha if training and config.mixup else None
    options = dict(training=training, clip_seconds=clip_seconds,
                   seed=config.seed, one_hot=one_hot,
                   mixup_alpha=mixup_alpha,
                   mixup_probability=config.mixup_probability)
    if training:  # waveform augmentation and sampling: training only
        options.update(time_shift=config.time_shift,
                       balanced=config.balanced_sampling)
    # Training streams are endless, reshuffled at every pass, and `fit`
    # counts steps_per_epoch: Keras would restart a finite Grain stream in
    # the same order, and warns when a tf.data stream of unknown length
    # ends.
    # With several processes, validation repeats too and `fit` counts its
    # steps: every process must run as many batches as the others.
    repeat = training or config.num_processes > 1
    # A TFRecord stream cannot start mid-way: a resumed run restarts at
    # the first pass's order (`dataset_for`).
    return dataset_for(info, batch_size, repeat=repeat,
                       num_workers=config.num_workers,
                       start_example=start_example, **options)


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
    """Steps of a global batch per pass, the same in every process."""
    return max(1, info.num_examples // batch_size)


def _process_batch_size(config):
    """Each process's share of the global `config.batch_size`."""
    if config.batch_size % config.num_processes:
        raise ValueError(
            f"batch_size={config.batch_size} (global) must be a multiple of "
            f"num_processes={config.num_processes}.")
    return config.batch_size // config.num_processes


def _distribution(config):
    """The distribution to train under (a scope), or a null context."""
    data_parallel = config.data_parallel
    if data_parallel is None:
        data_parallel = (keras.config.backend() == "jax"
                         and len(keras.distribution.list_devices()) > 1)
    if config.num_processes > 1:
        # Over the devices of every process; the pipelines already give
        # each process its own part of the data, so Keras must not shard.
        return keras.distribution.DataParallel(
            devices=keras.distribution.list_devices(),
            auto_shard_dataset=False).scope()
    if data_parallel:
        return keras.distribution.DataParallel().scope()
    return contextlib.nullcontext()


def _clear(output):
    """Removes what an earlier run wrote into `output` (and nothing else)."""
    for name in os.listdir(output):
        if name in (PRESET_DIR, BEST_PRESET_DIR, CHECKPOINT_DIR) or (
                name == BACKUP_DIR or name.startswith(BACKUP_DIR + "_")):
            shutil.rmtree(os.path.join(output, name), ignore_errors=True)
    for name in (METRICS_FILE, EVALUATION_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output, name))


def _holds_files(path):
    return any(files for _, _, files in os.walk(path))


def train(preset, train, output, validation=None, config=None, *,
          callbacks=None, verbose="auto", overwrite=False, **settings):
    """Fine-tunes a preset on a shard directory and saves the result.

    Rerunning an interrupted run resumes it from its last finished epoch
    (`OUTPUT/backup`, written atomically by `Backup`): the weights, the
    optimizer and the epoch count are restored, and the run says which
    epoch it goes on from; a damaged backup is skipped with a warning, for
    the one before it or a fresh start. An ArrayRecord stream goes on where
    it stopped, a TFRecord stream restarts at its first pass's order. The
    last `config.keep_checkpoints` epochs' weights stay in
    `OUTPUT/checkpoints`. With `config.monitor` (by
    default the validation accuracy or mAP), the best epoch's model is
    also kept in `OUTPUT/best_preset`. With `config.num_processes` > 1
    (JAX), every process calls `train` with the same arguments but its
    `process_id`; process 0 writes the files, and each reads its own part
    of the data (`keras_ast.data.pipelines.process_part`). Processes on
    CPU exchange gradients through JAX's CPU collectives: where JAX's
    `jax_cpu_collectives_implementation` is not already `"gloo"` (the
    default of recent JAX), set it before calling `train`
    (`keras-ast train` does). A run that finished is not redone unless
    `overwrite`, which always starts afresh. With `config.lora_rank`,
    only the adapters and the head train (`ASTBackbone.enable_lora`), and
    every file the run writes holds the merged weights, without adapters:
    the presets load as any other, and a resumed LoRA run goes on from
    its backup's merged weights with freshly drawn adapters (`A` random,
    `B` zero: the same function). With `config.freeze_backbone`, only the
    head trains. Nothing global is changed for
    the caller, except the random seed (`config.seed`) and, with several
    processes, the JAX distributed system this joins: the dtype policy
    goes to the model, and a distribution is scoped to the run.

    Args:
        preset: anything `ASTClassifier.from_preset` takes.
        train: a training shard directory (`keras_ast.data.make_shards`),
            or its `DatasetInfo`.
        output: where checkpoints, `metrics.json`, the backup used to
            resume, the final preset (`OUTPUT/preset`) and, with
            `validation`, `evaluation.json` go.
        validation: a validation shard directory, or its `DatasetInfo`
            (optional).
        config: a `TrainConfig` (default: the recipe's defaults).
        callbacks: more Keras callbacks for `fit`.
        verbose: `fit`'s verbosity.
        overwrite: start afresh: remove what an earlier run, finished or
            interrupted, wrote into `output` (backup included).
        **settings: `TrainConfig` fields that replace those of `config`.

    Returns:
        The trained `ASTClassifier`; `OUTPUT/preset` holds it.

    Raises:
        RunFinishedError: `output` holds a finished run and not
            `overwrite`.
        ValueError: a setting is invalid (`lora_rank` with
            `freeze_backbone`, for one), or the backup was written by a
            run with another model or settings.

    Examples:
        ```python
        train("ast_speech_commands_v2", "shards/train", "runs/sc",
              validation="shards/val", epochs=5)
        ```
    """
    config = dataclasses.replace(config or TrainConfig(), **settings)
    output = os.fspath(output)
    final = os.path.join(output, PRESET_DIR)
    if config.keep_checkpoints < 0:
        raise ValueError(f"keep_checkpoints={config.keep_checkpoints}: "
                         "give 0 (none) or more.")
    _check_trainable(config)
    if overwrite and os.path.isdir(output):
        _clear(output)  # an interrupted run's backup too: a fresh start
    elif os.path.exists(final):
        raise RunFinishedError(
            f"{output} holds a finished run ({final}); nothing to do. "
            "Train again with overwrite=True, or choose another output."
        )
    info = as_info(train)
    info.require_labels("train a classifier")
    validation = as_info(validation) if validation else None
    if validation is not None:
        validation.require_labels("validate a classifier")
    keras.utils.set_random_seed(config.seed)
    _initialize_processes(config)
    # Always given, so that patchout stored in a preset acts only where
    # this run asks for it.
    overrides = dict(patchout_time=config.patchout_time,
                     patchout_frequency=config.patchout_frequency,
                     patchout_random=config.patchout_random)
    if config.max_length:
        overrides["max_length"] = config.max_length
    if config.mixed_precision:
        overrides["dtype"] = "mixed_bfloat16"
    if config.remat:
        overrides["remat"] = True
    created = not os.path.exists(output)
    try:
        with _distribution(config):
            classifier = ASTClassifier.from_preset(
                preset, num_classes=info.num_classes, labels=info.labels,
                multi_label=info.multi_label,
                augmenter=_augmenter(preset, config),
                pooling=config.pooling, **overrides,
            )
            _choose_trainable(classifier, config)
            with _files_dir(output) as files:
                _fit(classifier, info, output, validation, config,
                     callbacks, verbose, files)
                classifier.save_to_preset(os.path.join(files, PRESET_DIR))
            # Only now that the result is safe: the backup was the run's
            # way back.
            shutil.rmtree(os.path.join(output, _backup_dir()),
                          ignore_errors=True)
    except BaseException:
        # A run that failed before writing anything leaves no folder.
        if created and os.path.isdir(output) and not _holds_files(output):
            shutil.rmtree(output, ignore_errors=True)
        raise
    if validation and _is_chief():
        # The final model's figures (mAP, F1, ...) on the validation set.
        evaluate(classifier, validation, output, batch_size=config.batch_size,
                 num_workers=config.num_workers)
    return classifier


def _check_trainable(config):
    """Refuses LoRA and patchout settings that do not go together."""
    if config.lora_rank < 0:
        raise ValueError(f"lora_rank={config.lora_rank}: give 0 (off) or "
                         "more.")
    if config.lora_rank and config.freeze_backbone:
        raise ValueError(
            f"lora_rank={config.lora_rank} and freeze_backbone=True: LoRA "
            "trains adapters in the backbone, a frozen backbone trains the "
            "head alone; choose one (--lora-rank or --freeze-backbone).")
    if config.lora_mlp and not config.lora_rank:
        raise ValueError("lora_mlp=True needs lora_rank (--lora-rank R): "
                         "the rank of the adapters.")


def _choose_trainable(classifier, config):
    """LoRA adapters or a frozen backbone, as `config` asks; logs how many
    of the classifier's weights train."""
    backbone = classifier.backbone
    if config.lora_rank:
        layers = LORA_ATTENTION + (LORA_MLP if config.lora_mlp else ())
        backbone.enable_lora(config.lora_rank, target_layer_names=layers)
    elif config.freeze_backbone:
        backbone.trainable = False
    if _is_chief():
        trainable = _count(classifier.trainable_weights)
        total = _count(classifier.weights)
        logger.info("Training %d of the model's %d weights (%.2f%%).",
                    trainable, total, 100.0 * trainable / max(1, total))


def _count(variables):
    return int(sum(math.prod(variable.shape) for variable in variables))


def _fresh_lora_factors(classifier, seed):
    """Draws every `lora_kernel_a` afresh; `lora_kernel_b` stays zero.

    Keras' `Dense` saves its kernel with the LoRA product merged in and,
    on loading, sets both factors to zero: neither could learn again (the
    gradient of each is zero while the other is). A fresh `A` with a zero
    `B` leaves the model's function as loaded, and lets both learn.
    """
    initializer = keras.initializers.HeUniform(seed=seed)
    for variable in classifier.backbone.weights:
        if variable.name == "lora_kernel_a":
            variable.assign(initializer(variable.shape, variable.dtype))


@contextlib.contextmanager
def _files_dir(output):
    """Where this process writes the run's files: `output` in process 0,
    a scratch folder, removed afterwards, in the others.

    Saving is collective under JAX (every process must call it: it creates
    variables across processes), but one copy of each file is enough.
    """
    if _is_chief():
        yield output
        return
    scratch = tempfile.mkdtemp(prefix="keras-ast-process-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _augmenter(preset, config):
    """The recipe's `SpecAugment` for `preset`'s features, or None.

    Masked bins take the value of silence after normalisation, as in the
    authors' loader (they masked before normalising); noise and roll
    follow the masks, as there. The classifier is built with it.
    """
    if not config.spec_augment:
        return None
    overrides = {"max_length": config.max_length} if config.max_length else {}
    # The preset's converter: its normalisation, and the input frames.
    converter = ASTAudioConverter.from_preset(preset, **overrides)
    time_mask = config.time_mask
    if time_mask is None:
        time_mask = max(1, converter.max_length // 10)
    return SpecAugment.from_converter(
        converter,
        freq_mask_param=config.freq_mask,
        time_mask_param=time_mask,
        seed=config.seed,
        noise=config.feature_noise,
        max_roll=config.time_roll,
    )


def _fit(classifier, info, output, validation, config, callbacks, verbose,
         files):
    clip_seconds = classifier.preprocessor.num_samples / (
        classifier.preprocessor.sampling_rate)
    one_hot = config.mixup and not classifier.multi_label
    monitor = _monitor(config, classifier, validation)
    batch_size = _process_batch_size(config)
    steps_per_epoch = _steps_per_epoch(info, config.batch_size)
    classifier.compile(learning_rate=_schedule(
        config.learning_rate, steps_per_epoch * config.epochs,
        config.warmup_fraction))
    backup = os.path.join(output, _backup_dir())
    initial_epoch = restore(classifier, backup)
    if initial_epoch and config.lora_rank:
        # The backup holds the merged kernels and no adapters (see
        # `_fresh_lora_factors`).
        _fresh_lora_factors(classifier, config.seed + initial_epoch)
    if initial_epoch > config.epochs:
        raise ValueError(
            f"{backup} holds {initial_epoch} finished epochs, more than "
            f"epochs={config.epochs}: rerun with the epochs of the "
            "interrupted run, or start afresh with --overwrite "
            "(overwrite=True).")
    if initial_epoch and _is_chief():
        logger.info("Resuming %s after epoch %d of %d (%s): training goes "
                    "on from epoch %d.", output, initial_epoch,
                    config.epochs, backup, initial_epoch + 1)
    # A resumed run's stream starts where its finished epochs stopped.
    start_example = initial_epoch * steps_per_epoch * batch_size
    train_data = _datasets(info, batch_size, True, clip_seconds,
                           config, one_hot, start_example)
    validation_data = validation_steps = None
    if validation:
        validation_data = _datasets(validation, batch_size, False,
                                    clip_seconds, config, one_hot)
        if config.num_processes > 1:
            validation_steps = max(1, validation.num_examples
                                   // config.batch_size)

    metrics_path = os.path.join(output, METRICS_FILE)
    previous = read_json(metrics_path) if os.path.exists(metrics_path) else []
    writers = []
    if monitor:
        # Before MetricsFile: an epoch is in metrics.json only once its
        # best preset is saved, so a resumed run compares correctly.
        writers.append(BestPreset(os.path.join(files, BEST_PRESET_DIR),
                                  monitor, previous))
    writers += [
        EpochCheckpoints(os.path.join(files, CHECKPOINT_DIR),
                         config.keep_checkpoints),
        MetricsFile(os.path.join(files, METRICS_FILE), previous),
        # Last: an epoch counts as finished (a rerun goes on after it)
        # only once everything it writes is written.
        Backup(backup),
    ]
    with warnings.catch_warnings():
        # Keras warns when a stream of unknown length ends, as the
        # validation stream does at every evaluation; the training stream
        # is endless, so the warning says nothing here.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        classifier.fit(train_data, validation_data=validation_data,
                       epochs=config.epochs, callbacks=writers + list(
                           callbacks or []),
                       verbose=verbose,
                       initial_epoch=initial_epoch,
                       steps_per_epoch=steps_per_epoch,  # see `_datasets`
                       validation_steps=validation_steps,
                       shuffle=False)  # the pipelines shuffle, with the seed
