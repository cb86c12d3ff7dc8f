"""A resumable training run: what `train` and `pretrain` share.

A run fits a task model (`ASTClassifier`, `ASTPretrainer`) on shards into
an output folder: it writes a checkpoint (`EpochCheckpoints`),
`metrics.json` (`MetricsFile`), the best epoch's preset (`BestPreset`) and
a backup (`Backup`) every epoch, resumes an interrupted run from its
backup (`restore`), and saves the result as a preset (`OUTPUT/preset`):
`run_folder` and `fit_resumably`. With several JAX processes, process 0
writes the files (`files_dir`) and each reads its own part of the data.
Messages (the epoch a run resumes from) go to the calling module's logger.
"""

import contextlib
import os
import re
import shutil
import tempfile
import warnings

import keras

from keras_ast.data.pipelines import dataset_for
from keras_ast.data.pipelines import process_part
from keras_ast.utils.files import TEMP_PREFIX
from keras_ast.utils.files import atomic_path
from keras_ast.utils.files import read_json
from keras_ast.utils.files import sha256_file
from keras_ast.utils.files import write_json

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


def process_index():
    """This process's index among the training processes (0 alone)."""
    return process_part()[0]


def is_chief():
    """Whether this process writes the run's files (process 0 of N)."""
    return process_index() == 0


def initialize_processes(config):
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


def backup_dir():
    # Every process restores from its own backup; process 0's is the usual
    # one, the others' sit beside it, so no two write the same file.
    index = process_index()
    return BACKUP_DIR if index == 0 else f"{BACKUP_DIR}_process_{index}"


def schedule(learning_rate, steps, warmup_fraction):
    warmup = max(1, int(steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 100,
        decay_steps=max(1, steps - warmup),
        warmup_target=learning_rate,
        warmup_steps=warmup,
        alpha=0.01,
    )


def steps_per_epoch(info, batch_size):
    """Steps of a global batch per pass, the same in every process."""
    return max(1, info.num_examples // batch_size)


def process_batch_size(config):
    """Each process's share of the global `config.batch_size`."""
    if config.batch_size % config.num_processes:
        raise ValueError(
            f"batch_size={config.batch_size} (global) must be a multiple of "
            f"num_processes={config.num_processes}.")
    return config.batch_size // config.num_processes


def distribution(config):
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


def clear(output, extra_files=()):
    """Removes what an earlier run wrote into `output` (and nothing else):
    its presets, checkpoints, backups, `metrics.json` and `extra_files`."""
    for name in os.listdir(output):
        if name in (PRESET_DIR, BEST_PRESET_DIR, CHECKPOINT_DIR) or (
                name == BACKUP_DIR or name.startswith(BACKUP_DIR + "_")):
            shutil.rmtree(os.path.join(output, name), ignore_errors=True)
    for name in (METRICS_FILE, *extra_files):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output, name))


def holds_files(path):
    return any(files for _, _, files in os.walk(path))


@contextlib.contextmanager
def files_dir(output):
    """Where this process writes the run's files: `output` in process 0,
    a scratch folder, removed afterwards, in the others.

    Saving is collective under JAX (every process must call it: it creates
    variables across processes), but one copy of each file is enough.
    """
    if is_chief():
        yield output
        return
    scratch = tempfile.mkdtemp(prefix="keras-ast-process-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_config(config):
    """Refuses the settings no run takes (a negative checkpoint count)."""
    if config.keep_checkpoints < 0:
        raise ValueError(f"keep_checkpoints={config.keep_checkpoints}: "
                         "give 0 (none) or more.")


def start(config):
    """Seeds the run (`config.seed`) and joins the other processes."""
    keras.utils.set_random_seed(config.seed)
    initialize_processes(config)


def backbone_overrides(config, **overrides):
    """The backbone settings a run's config asks for (`max_length`,
    `mixed_precision` as `mixed_bfloat16`, `remat`), with `overrides`:
    keyword arguments of `from_preset`."""
    if config.max_length:
        overrides["max_length"] = config.max_length
    if config.mixed_precision:
        overrides["dtype"] = "mixed_bfloat16"
    if config.remat:
        overrides["remat"] = True
    return overrides


def stream(info, batch_size, training, config, start_example=0, **options):
    """A run's training or validation stream of a shard set.

    Args:
        info: the shard set's `DatasetInfo`.
        batch_size: this process's batch size.
        training: the training stream (shuffled, endless) or not.
        config: the run's settings: `seed`, `num_workers`,
            `num_processes`.
        start_example: where a resumed run's training stream starts.
        **options: more `dataset_for` options (augmentation, mixup).
    """
    # Training streams are endless, reshuffled at every pass, and `fit`
    # counts steps_per_epoch: Keras would restart a finite Grain stream in
    # the same order, and warns when a tf.data stream of unknown length
    # ends.
    # With several processes, validation repeats too and `fit` counts its
    # steps: every process must run as many batches as the others.
    repeat = training or config.num_processes > 1
    # A TFRecord stream cannot start mid-way: a resumed run restarts at
    # the first pass's order (`dataset_for`).
    return dataset_for(info, batch_size, training=training, repeat=repeat,
                       seed=config.seed, num_workers=config.num_workers,
                       start_example=start_example, **options)


def validation_steps(validation, config):
    """`fit`'s validation steps: None (to the end of the stream), or, with
    several processes, as many as every process runs."""
    if validation is None or config.num_processes <= 1:
        return None
    return max(1, validation.num_examples // config.batch_size)


@contextlib.contextmanager
def run_folder(output, overwrite, extra_files=()):
    """Guards a run's output folder.

    Refuses a finished run (unless `overwrite`, which clears everything an
    earlier run wrote, backup included: a fresh start) and removes the
    folder again if the run fails before writing any file into it.

    Args:
        output: the run's folder.
        overwrite: start afresh.
        extra_files: more files of a run, cleared by `overwrite` (e.g.
            `evaluation.json`).

    Raises:
        RunFinishedError: `output` holds a finished run and not
            `overwrite`.
    """
    final = os.path.join(output, PRESET_DIR)
    if overwrite and os.path.isdir(output):
        clear(output, extra_files)
    elif os.path.exists(final):
        raise RunFinishedError(
            f"{output} holds a finished run ({final}); nothing to do. "
            "Run again with overwrite=True (--overwrite), or choose "
            "another output.")
    created = not os.path.exists(output)
    try:
        yield
    except BaseException:
        if created and os.path.isdir(output) and not holds_files(output):
            shutil.rmtree(output, ignore_errors=True)
        raise


def monitored(monitor, known, validation):
    """The validated `monitor`, its default, or None.

    Args:
        monitor: the configured name, or None.
        known: the names the model logs on training data (e.g.
            `["loss", "accuracy"]`); the first after `"loss"` (or
            `"loss"` alone) is the default with validation data.
        validation: whether the run has validation data.

    Raises:
        ValueError: `monitor` is not logged by such a run.
    """
    default = known[-1]
    if validation:
        known = [f"val_{name}" for name in known] + list(known)
    if monitor is None:
        return f"val_{default}" if validation else None
    if monitor not in known:
        raise ValueError(
            f"monitor={monitor!r} is not logged by this run; choose "
            f"one of {', '.join(known)}"
            + ("" if validation else " (val_* need validation data)") + ".")
    return monitor


def fit_resumably(model, output, files, config, streams, steps_per_epoch,
                  *, monitor=None, validation_steps=None, callbacks=None,
                  verbose="auto", after_restore=None, logger=None):
    """Compiles `model` with the run's schedule and fits it, resumably.

    Restores the newest whole backup of `output`, then fits from the epoch
    after it with `BestPreset` (with `monitor`), `EpochCheckpoints`,
    `MetricsFile` and `Backup` writing into `files` (and the backup into
    `output`).

    Args:
        model: a task model with `compile(learning_rate=...)` and
            `save_to_preset`.
        output: the run's folder (the backup is read and written there).
        files: where this process writes the other files (`files_dir`).
        config: the run's settings: `epochs`, `learning_rate`,
            `warmup_fraction`, `batch_size` (global), `keep_checkpoints`.
        streams: `streams(start_example)` -> `(train_data,
            validation_data)`, the training stream starting at that
            example of its endless order (validation_data may be None).
        steps_per_epoch: global batches per epoch.
        monitor: the logged value whose best epoch is kept, or None.
        validation_steps: passed to `fit`.
        callbacks: more Keras callbacks.
        verbose: `fit`'s verbosity.
        after_restore: called with the restored epoch count when a backup
            was restored.
        logger: where the resume message goes.

    Raises:
        ValueError: the backup holds more epochs than `config.epochs`, or
            does not fit the model.
    """
    model.compile(learning_rate=schedule(
        config.learning_rate, steps_per_epoch * config.epochs,
        config.warmup_fraction))
    backup = os.path.join(output, backup_dir())
    initial_epoch = restore(model, backup)
    if initial_epoch and after_restore is not None:
        after_restore(initial_epoch)
    if initial_epoch > config.epochs:
        raise ValueError(
            f"{backup} holds {initial_epoch} finished epochs, more than "
            f"epochs={config.epochs}: rerun with the epochs of the "
            "interrupted run, or start afresh with --overwrite "
            "(overwrite=True).")
    if initial_epoch and is_chief() and logger is not None:
        logger.info("Resuming %s after epoch %d of %d (%s): training goes "
                    "on from epoch %d.", output, initial_epoch,
                    config.epochs, backup, initial_epoch + 1)
    # A resumed run's stream starts where its finished epochs stopped.
    batch_size = process_batch_size(config)
    train_data, validation_data = streams(
        initial_epoch * steps_per_epoch * batch_size)

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
        model.fit(train_data, validation_data=validation_data,
                  epochs=config.epochs,
                  callbacks=writers + list(callbacks or []),
                  verbose=verbose, initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch,
                  validation_steps=validation_steps,
                  shuffle=False)  # the pipelines shuffle, with the seed


def save_result(model, output, files):
    """Saves the final preset, then removes the backup: the result is
    safe, and the backup was the run's way back."""
    model.save_to_preset(os.path.join(files, PRESET_DIR))
    shutil.rmtree(os.path.join(output, backup_dir()), ignore_errors=True)
