"""Pretraining on unlabelled audio: the `keras-ast pretrain` recipe.

`pretrain` builds an `ASTPretrainer` (masked spectrogram patch modelling)
around a preset's backbone and converter, streams the shards into `fit`
with the settings of a `PretrainConfig` as a resumable run
(`keras_ast.training.runs`: a checkpoint, `metrics.json` with the
reconstruction loss, and a backup every epoch), and saves the backbone as
an ordinary backbone preset (`OUTPUT/preset`, and the best epoch's in
`OUTPUT/best_preset`) that `ASTClassifier.from_preset` and `keras-ast
train` take. The shards may be unlabelled (`make_shards(...,
unlabelled=True)`) or labelled (the labels are ignored).
"""

import dataclasses
import logging
import os

from keras_ast.data.info import as_info
from keras_ast.models.audio_converter import ASTAudioConverter
from keras_ast.models.backbone import ASTBackbone
from keras_ast.models.pretrainer import ASTPretrainer
from keras_ast.training import runs
from keras_ast.training.config import PretrainConfig

logger = logging.getLogger(__name__)


def pretrain(preset, train, output, validation=None, config=None, *,
             callbacks=None, verbose="auto", overwrite=False, **settings):
    """Pretrains a preset's backbone on audio shards and saves it.

    As `train`: rerunning an interrupted run resumes it from its last
    finished epoch (`OUTPUT/backup`); a finished run is not redone unless
    `overwrite`, which starts afresh; several JAX processes each call it
    with their `process_id`. `OUTPUT/metrics.json` holds every epoch's
    reconstruction `loss` (and `val_loss`): about 1.0 is what predicting
    each patch's own mean scores (see `ASTPretrainer`). The presets hold
    the backbone alone (the decoder is dropped) and ask for a head on the
    mean of the patch tokens (`pooling="mean"`), which the masked-patch
    objective trains, unlike the [CLS] token.

    Args:
        preset: anything `ASTBackbone.from_preset` takes: a built-in name,
            a hub id or a folder, e.g. random weights saved with
            `save_to_preset`.
        train: a training shard directory, unlabelled or not, or its
            `DatasetInfo`.
        output: where checkpoints, `metrics.json`, the backup and the
            presets go.
        validation: a validation shard directory, or its `DatasetInfo`:
            the reconstruction loss on audio the model does not train on.
        config: a `PretrainConfig` (default: its defaults).
        callbacks: more Keras callbacks for `fit`.
        verbose: `fit`'s verbosity.
        overwrite: start afresh: remove what an earlier run wrote.
        **settings: `PretrainConfig` fields that replace those of
            `config`.

    Returns:
        The trained `ASTPretrainer`; `OUTPUT/preset` holds its backbone.

    Raises:
        RunFinishedError: `output` holds a finished run and not
            `overwrite` (`keras_ast.training.runs`).
        ValueError: an invalid setting, or a backup written by a run with
            another model or settings.

    Examples:
        ```python
        pretrain("random_small", "shards/unlabelled", "runs/pretrained",
                 validation="shards/unlabelled_val", epochs=40)
        ```
    """
    config = dataclasses.replace(config or PretrainConfig(), **settings)
    output = os.fspath(output)
    runs.check_config(config)
    info = as_info(train)
    validation = as_info(validation) if validation else None
    with runs.run_folder(output, overwrite):
        runs.start(config)
        # Patchout drops tokens in its own way; the masking replaces it.
        overrides = runs.backbone_overrides(
            config, patchout_time=0, patchout_frequency=0,
            patchout_random=0.0)
        with runs.distribution(config):
            backbone = ASTBackbone.from_preset(preset, **overrides)
            converter = ASTAudioConverter.from_preset(
                preset, max_length=backbone.max_length)
            pretrainer = ASTPretrainer(
                backbone, preprocessor=converter,
                mask_ratio=config.mask_ratio, masking=config.masking,
                block_size=config.block_size,
                visible_only=config.visible_only,
                contrastive_weight=config.contrastive_weight,
                seed=config.seed)
            with runs.files_dir(output) as files:
                _fit(pretrainer, info, output, validation, config,
                     callbacks, verbose, files)
                runs.save_result(pretrainer, output, files)
    return pretrainer


def _fit(pretrainer, info, output, validation, config, callbacks, verbose,
         files):
    converter = pretrainer.preprocessor
    clip_seconds = converter.num_samples / converter.sampling_rate
    batch_size = runs.process_batch_size(config)

    def streams(start_example):
        train_data = runs.stream(info, batch_size, True, config,
                                 start_example, clip_seconds=clip_seconds,
                                 time_shift=config.time_shift)
        validation_data = None
        if validation:
            validation_data = runs.stream(validation, batch_size, False,
                                          config, clip_seconds=clip_seconds)
        return train_data, validation_data

    runs.fit_resumably(
        pretrainer, output, files, config, streams,
        runs.steps_per_epoch(info, config.batch_size),
        monitor=runs.monitored(config.monitor, ["loss"], validation),
        validation_steps=runs.validation_steps(validation, config),
        callbacks=callbacks, verbose=verbose, logger=logger)
