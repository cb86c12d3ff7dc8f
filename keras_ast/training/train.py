"""Fine-tuning AST on shards: the `keras-ast train` recipe.

`train` builds a classifier from a preset and streams the shards into
`fit` with the recipe of a `TrainConfig` (`keras_ast.training.config`), as
a resumable run (`keras_ast.training.runs`: a checkpoint, `metrics.json`
and a backup every epoch, the result saved as a preset). The optimizer,
loss and metrics are `ASTClassifier.compile()`'s defaults, with the
recipe's learning-rate schedule. With a validation set, the final model
is evaluated on it (`evaluate`, from `keras_ast.training.evaluate`) into
`OUTPUT/evaluation.json`.

Each shard directory's `dataset.json` is read once (`read_info`); the
pipelines (`keras_ast.data.pipelines.dataset_for`) and the evaluation are
handed the result. Messages (the epoch a run resumes from) go to this
module's logger; `keras-ast train` shows them.
"""

import dataclasses
import logging
import math
import os

import keras

from keras_ast.data.info import as_info
from keras_ast.data.spec_augment import SpecAugment
from keras_ast.models.audio_converter import ASTAudioConverter
from keras_ast.models.backbone import LORA_ATTENTION
from keras_ast.models.backbone import LORA_MLP
from keras_ast.models.classifier import ASTClassifier
from keras_ast.training import runs
from keras_ast.training.config import TrainConfig
from keras_ast.training.evaluate import REPORT_FILE as EVALUATION_FILE
from keras_ast.training.evaluate import evaluate

logger = logging.getLogger(__name__)


def _monitor(config, classifier, validation):
    """The validated `config.monitor`, its default, or None."""
    metric = "map" if classifier.multi_label else "accuracy"
    return runs.monitored(config.monitor, ["loss", metric], validation)


def _datasets(info, batch_size, training, clip_seconds, config, one_hot,
              start_example=0):
    """The training or validation stream of a shard set's `DatasetInfo`."""
    mixup_alpha = config.mixup_alpha if training and config.mixup else None
    options = dict(clip_seconds=clip_seconds, one_hot=one_hot,
                   mixup_alpha=mixup_alpha,
                   mixup_probability=config.mixup_probability)
    if training:  # waveform augmentation and sampling: training only
        options.update(time_shift=config.time_shift,
                       balanced=config.balanced_sampling)
    return runs.stream(info, batch_size, training, config, start_example,
                       **options)


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
    runs.check_config(config)
    _check_trainable(config)
    info = as_info(train)
    info.require_labels("train a classifier")
    validation = as_info(validation) if validation else None
    if validation is not None:
        validation.require_labels("validate a classifier")
    with runs.run_folder(output, overwrite, extra_files=(EVALUATION_FILE,)):
        runs.start(config)
        # Always given, so that patchout stored in a preset acts only where
        # this run asks for it.
        overrides = runs.backbone_overrides(
            config, patchout_time=config.patchout_time,
            patchout_frequency=config.patchout_frequency,
            patchout_random=config.patchout_random)
        with runs.distribution(config):
            classifier = ASTClassifier.from_preset(
                preset, num_classes=info.num_classes, labels=info.labels,
                multi_label=info.multi_label,
                augmenter=_augmenter(preset, config),
                pooling=config.pooling, **overrides,
            )
            _choose_trainable(classifier, config)
            with runs.files_dir(output) as files:
                _fit(classifier, info, output, validation, config,
                     callbacks, verbose, files)
                runs.save_result(classifier, output, files)
    if validation and runs.is_chief():
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
    if runs.is_chief():
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
    batch_size = runs.process_batch_size(config)

    def streams(start_example):
        train_data = _datasets(info, batch_size, True, clip_seconds,
                               config, one_hot, start_example)
        validation_data = None
        if validation:
            validation_data = _datasets(validation, batch_size, False,
                                        clip_seconds, config, one_hot)
        return train_data, validation_data

    def after_restore(epoch):
        if config.lora_rank:
            # The backup holds the merged kernels and no adapters (see
            # `_fresh_lora_factors`).
            _fresh_lora_factors(classifier, config.seed + epoch)

    runs.fit_resumably(
        classifier, output, files, config, streams,
        runs.steps_per_epoch(info, config.batch_size),
        monitor=_monitor(config, classifier, validation),
        validation_steps=runs.validation_steps(validation, config),
        callbacks=callbacks, verbose=verbose, after_restore=after_restore,
        logger=logger)
