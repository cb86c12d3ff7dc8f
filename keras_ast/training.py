"""Fine-tuning AST on shards: the `keras-ast train` recipe.

`train` builds a classifier from a preset, streams the shards into `fit`
with the recipe of a `TrainConfig` (`keras_ast.train_config`), writes a
checkpoint and `metrics.json` every epoch, resumes an interrupted run, and
saves the result as a preset. The optimizer, loss and metrics are
`ASTClassifier.compile()`'s defaults, with the recipe's learning-rate
schedule. With a validation set, the final model is evaluated on it
(`evaluate`, from `keras_ast.evaluation`) into `OUTPUT/evaluation.json`.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
import warnings

import keras

from keras_ast.classifier import ASTClassifier
from keras_ast.data import pipelines
from keras_ast.data.index import read_info
from keras_ast.evaluation import REPORT_FILE as EVALUATION_FILE
from keras_ast.evaluation import evaluate
from keras_ast.files import read_json
from keras_ast.files import write_json
from keras_ast.train_config import TrainConfig

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
    from keras_ast.data.pipelines import _process_shard

    return _process_shard()[0]


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

    # CPU processes exchange gradients through gloo (TCP); it only concerns
    # computations on CPU devices, so it is harmless on GPU and TPU hosts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if jax.distributed.is_initialized():
        return  # a caller (or an earlier run) already joined
    keras.distribution.initialize(config.coordinator, config.num_processes,
                                  config.process_id)


def _resumed_epoch(output):
    """Epochs finished by an interrupted run in `output`, as its backup
    (`keras.callbacks.BackupAndRestore`) will restore them."""
    backup = os.path.join(output, _backup_dir())
    for name in ("training_metadata.json.bkp", "training_metadata.json"):
        # BackupAndRestore falls back on the .bkp of an unfinished save.
        path = os.path.join(backup, name)
        if os.path.exists(path):
            return int(read_json(path)["epoch"])
    return 0


def _backup_dir():
    # Every process restores from its own backup; process 0's is the usual
    # one, the others' sit beside it, so no two write the same file.
    index = _process_index()
    return BACKUP_DIR if index == 0 else f"{BACKUP_DIR}_process_{index}"


def _datasets(path, batch_size, training, clip_seconds, config, one_hot,
              start_example=0):
    info = read_info(path)
    mixup_alpha = config.mixup_alpha if training and config.mixup else None
    common = dict(training=training, clip_seconds=clip_seconds,
                  seed=config.seed, one_hot=one_hot, mixup_alpha=mixup_alpha,
                  mixup_probability=config.mixup_probability)
    if training:  # waveform augmentation and sampling: training only
        common.update(time_shift=config.time_shift,
                      balanced=config.balanced_sampling)
    # Training streams are endless, reshuffled at every pass, and `fit`
    # counts steps_per_epoch: Keras would restart a finite Grain stream in
    # the same order, and warns when a tf.data stream of unknown length
    # ends.
    # With several processes, validation repeats too and `fit` counts its
    # steps: every process must run as many batches as the others.
    repeat = training or config.num_processes > 1
    if info["record_format"] == "tfrecord":
        # tf.data cannot start a shuffled stream mid-way without reading up
        # to there: a resumed run restarts at the first pass's order.
        return pipelines.tf_dataset(path, batch_size, repeat=repeat,
                                    **common)
    return pipelines.grain_dataset(path, batch_size,
                                   num_workers=config.num_workers,
                                   num_epochs=None if repeat else 1,
                                   start_example=start_example, **common)


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
    return max(1, info["num_examples"] // batch_size)


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
    (`OUTPUT/backup`): the weights, the optimizer and the epoch count are
    restored; an ArrayRecord stream goes on where it stopped, a TFRecord
    stream restarts at its first pass's order. With `config.monitor` (by
    default the validation accuracy or mAP), the best epoch's model is
    also kept in `OUTPUT/best_preset`. With `config.num_processes` > 1
    (JAX), every process calls `train` with the same arguments but its
    `process_id`; process 0 writes the files. A run
    that finished is not redone unless `overwrite`. Nothing global is
    changed for the caller, except the random seed (`config.seed`): the
    dtype policy goes to the model, and a distribution is scoped to the run.

    Args:
        preset: anything `ASTClassifier.from_preset` takes.
        train: a training shard directory (`keras_ast.data.make_shards`).
        output: where checkpoints, `metrics.json`, the backup used to
            resume, the final preset (`OUTPUT/preset`) and, with
            `validation`, `evaluation.json` go.
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
    _initialize_processes(config)
    overrides = {"max_length": config.max_length} if config.max_length else {}
    if config.mixed_precision:
        overrides["dtype"] = "mixed_bfloat16"
    if config.remat:
        overrides["remat"] = True
    created = not os.path.exists(output)
    try:
        with _distribution(config):
            classifier = ASTClassifier.from_preset(
                preset, num_classes=len(info["labels"]),
                labels=info["labels"], multi_label=bool(info["multi_label"]),
                **overrides,
            )
            with _files_dir(output) as files:
                _fit(classifier, info, train, output, validation, config,
                     callbacks, verbose, files)
                classifier.save_to_preset(os.path.join(files, PRESET_DIR))
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


def _fit(classifier, info, train, output, validation, config, callbacks,
         verbose, files):
    from keras_ast.data.spec_augment import SpecAugment

    frames = classifier.backbone.max_length
    if config.spec_augment:
        # Masked bins take the value of silence after normalisation, as in
        # the authors' loader (they masked before normalising); noise and
        # roll follow the masks, as there.
        time_mask = config.time_mask
        classifier.augmenter = SpecAugment.from_converter(
            classifier.preprocessor,
            freq_mask_param=config.freq_mask,
            time_mask_param=(max(1, frames // 10) if time_mask is None
                             else time_mask),
            seed=config.seed,
            noise=config.feature_noise,
            max_roll=config.time_roll,
        )
    clip_seconds = classifier.preprocessor.num_samples / (
        classifier.preprocessor.sampling_rate)
    one_hot = config.mixup and not classifier.multi_label
    monitor = _monitor(config, classifier, validation)
    batch_size = _process_batch_size(config)
    steps_per_epoch = _steps_per_epoch(info, config.batch_size)
    # A resumed run's stream starts where its finished epochs stopped.
    start_example = _resumed_epoch(output) * steps_per_epoch * batch_size
    train_data = _datasets(train, batch_size, True, clip_seconds,
                           config, one_hot, start_example)
    validation_data = validation_steps = None
    if validation:
        validation_data = _datasets(validation, batch_size, False,
                                    clip_seconds, config, one_hot)
        if config.num_processes > 1:
            validation_steps = max(1, read_info(validation)["num_examples"]
                                   // config.batch_size)
    classifier.compile(learning_rate=_schedule(
        config.learning_rate, steps_per_epoch * config.epochs,
        config.warmup_fraction))

    metrics_path = os.path.join(output, METRICS_FILE)
    previous = read_json(metrics_path) if os.path.exists(metrics_path) else []
    os.makedirs(os.path.join(files, CHECKPOINT_DIR), exist_ok=True)
    # Resumes an interrupted run from its last finished epoch.
    writers = [keras.callbacks.BackupAndRestore(
        os.path.join(output, _backup_dir()))]
    if monitor:
        # Before MetricsFile: an epoch is in metrics.json only once its
        # best preset is saved, so a resumed run compares correctly.
        writers.append(BestPreset(os.path.join(files, BEST_PRESET_DIR),
                                  monitor, previous))
    writers += [
        keras.callbacks.ModelCheckpoint(
            os.path.join(files, CHECKPOINT_DIR,
                         "epoch_{epoch:03d}.weights.h5"),
            save_weights_only=True,
        ),
        MetricsFile(os.path.join(files, METRICS_FILE), previous),
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
                       steps_per_epoch=steps_per_epoch,  # see `_datasets`
                       validation_steps=validation_steps,
                       shuffle=False)  # the pipelines shuffle, with the seed
