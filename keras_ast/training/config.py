"""The settings of the training recipes, in one place (no Keras import).

`keras_ast.training.train.train` takes a `TrainConfig` and
`keras_ast.training.pretrain.pretrain` a `PretrainConfig`; `keras-ast
train` and `keras-ast pretrain` make one flag per field (`batch_size` ->
`--batch-size`, a boolean that is on by default -> `--no-...`), so the API
and the command line share names, defaults and help texts, and `--help`
stays instant.
"""

import dataclasses
from typing import Optional


def _setting(default, help, type=None, choices=None):
    return dataclasses.field(
        default=default,
        metadata={"help": help, "type": type, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How `train` fine-tunes a preset; every field has the recipe's default.

    The defaults follow the AST authors (AdamW with betas (0.95, 0.999),
    their Speech Commands learning rate, warm-up then cosine decay, mixup
    of a quarter of the clips, and their Speech Commands `noise` option:
    feature noise and time roll), with gradient clipping, so that a
    randomly initialised model also trains. SpecAugment's masks are off
    by default (on the keyword set they cost a run from scratch accuracy;
    the README has the measurements); turn them on (`freq_mask`,
    `time_mask`) for longer runs or fine-tuning. The instances are frozen:
    `dataclasses.replace` makes a changed copy.

    Args:
        epochs: passes over the training data.
        batch_size: clips per step, global (over all devices).
        learning_rate: the peak learning rate, after warm-up (about 1e-3
            suits a model trained from scratch; pretrained AudioSet
            weights on a small set want 1e-5 to 5e-5).
        warmup_fraction: the share of the steps spent warming up.
        max_length: input frames; the position embeddings are adapted and
            clips cut to match. None: the preset's.
        mixed_precision: train under `mixed_bfloat16` (features,
            LayerNorms and logits stay float32).
        remat: gradient checkpointing: recompute the encoder's activations
            in the backward pass (less memory, more compute).
        patchout_time: structured patchout (PaSST): time columns of the
            patch grid dropped at random at every training step (0: none;
            PaSST drops 40 of AudioSet's 101).
        patchout_frequency: frequency rows of the patch grid dropped at
            random at every training step (0: none; PaSST: 4 of 12).
        patchout_random: the share of the remaining patch tokens also
            dropped at random in training (0: none).
        pooling: what the head reads, `"cls"` (the [CLS] and
            distillation tokens, as the MIT checkpoints) or `"mean"` (the
            mean of the patch tokens, for a self-supervised backbone); see
            `ASTClassifier`. None: the preset's (`ASTClassifier.from_preset`).
        lora_rank: train low-rank adapters of this rank on the attention's
            query and value projections, the rest of the backbone frozen
            (0: off; `ASTBackbone.enable_lora`). The saved presets hold
            the merged weights and load without LoRA. A resumed LoRA run
            goes on from the merged weights of its backup with fresh
            adapters.
        lora_mlp: with `lora_rank`, adapt the MLP's two projections too.
        freeze_backbone: train the head alone (a linear probe on the
            pooled output); not with `lora_rank`.
        spec_augment: SpecAugment on the features: masks, noise and time
            roll. False: none of them.
        freq_mask: the widest SpecAugment frequency mask, in mel bins (0:
            none; the authors use 48, and 24 for ESC-50).
        time_mask: the widest SpecAugment time mask, in frames (0: none;
            the authors use 48 for Speech Commands, 192 for AudioSet;
            None: a tenth of the input frames).
        mixup: mix waveforms and targets (`keras_ast.data.mixup`).
        mixup_alpha: mixup's Beta(alpha, alpha) parameter.
        mixup_probability: the share of the clips that are mixed (the
            authors use 0.5 for AudioSet, 0.6 for Speech Commands).
        feature_noise: the largest amplitude of the uniform noise added to
            the normalised features (0: none).
        time_roll: the largest random circular roll of the features along
            time, in frames (0: none).
        time_shift: the largest random circular shift of the waveforms, as
            a share of the clip (0: none).
        balanced_sampling: draw training clips with replacement, weighted
            so that every label is drawn about equally often.
        seed: the shuffling, cropping and augmentation seed.
        num_workers: Grain decoding processes (ArrayRecord shards).
        data_parallel: split batches over all local devices
            (`keras.distribution.DataParallel`). None: when JAX sees
            several devices.
        coordinator: `HOST:PORT` of process 0, for training in several
            processes (JAX only; every process gets the same address).
            None: one process.
        num_processes: training processes (one per host), with
            `coordinator`.
        process_id: this process's index, 0 to `num_processes - 1`.
        keep_checkpoints: how many of the latest epochs' checkpoints
            (weights and optimizer state) `OUTPUT/checkpoints` keeps (0:
            none); the best epoch's model is kept apart (see `monitor`).
        monitor: the logged value whose best epoch is kept in
            `OUTPUT/best_preset`: `val_accuracy`, `val_map`, `val_loss`,
            `accuracy`, `map` or `loss`. None: `val_accuracy`, or
            `val_map` for multi-label data, when there is validation data;
            no best model without.

    Examples:
        >>> config = TrainConfig(epochs=30, learning_rate=1e-3, mixup=False)
        >>> config.batch_size, config.mixup
        (16, False)
    """

    # --- optimisation
    epochs: int = _setting(10, "passes over the training data", int)
    batch_size: int = _setting(
        16, "clips per step (global, over all devices)", int)
    learning_rate: float = _setting(
        2.5e-4, "peak learning rate, after warm-up (about 1e-3 suits a "
        "model trained from scratch; pretrained AudioSet weights on a small "
        "set want 1e-5 to 5e-5)", float)
    warmup_fraction: float = _setting(
        0.1, "share of the steps spent warming up", float)
    # --- model
    max_length: Optional[int] = _setting(
        None, "input frames; the position embeddings are adapted and clips "
        "cut to match (default: the preset's)", int)
    mixed_precision: bool = _setting(
        False, "train under mixed_bfloat16 (features, LayerNorms and logits "
        "stay float32)")
    remat: bool = _setting(
        False, "gradient checkpointing: recompute the encoder's activations "
        "in the backward pass (less memory, more compute)")
    patchout_time: int = _setting(
        0, "structured patchout (PaSST): time columns of the patch grid "
        "dropped at random at every training step (0: none; PaSST drops 40 "
        "of AudioSet's 101)", int)
    patchout_frequency: int = _setting(
        0, "frequency rows of the patch grid dropped at random at every "
        "training step (0: none; PaSST: 4 of 12)", int)
    patchout_random: float = _setting(
        0.0, "share of the remaining patch tokens also dropped at random "
        "in training (0: none)", float)
    pooling: Optional[str] = _setting(
        None, "what the head reads: cls, the [CLS] and distillation tokens "
        "(as the MIT checkpoints), or mean, the mean of the patch tokens "
        "(for a self-supervised backbone); default: the preset's", str,
        choices=("cls", "mean"))
    # --- which weights train
    lora_rank: int = _setting(
        0, "train low-rank adapters of this rank on the attention's query "
        "and value projections, the rest of the backbone frozen (0: off); "
        "the saved presets hold the merged weights", int)
    lora_mlp: bool = _setting(
        False, "with --lora-rank, adapt the MLP's two projections too")
    freeze_backbone: bool = _setting(
        False, "train the head alone (a linear probe on the pooled "
        "output); not with --lora-rank")
    # --- augmentation
    spec_augment: bool = _setting(
        True, "SpecAugment on the features: masks, noise and time roll "
        "(off: none of them)")
    freq_mask: int = _setting(
        0, "widest SpecAugment frequency mask, in mel bins (0: none; the "
        "authors: 48, 24 for ESC-50)", int)
    time_mask: Optional[int] = _setting(
        0, "widest SpecAugment time mask, in frames (0: none; the "
        "authors: 48 for Speech Commands, 192 for AudioSet; None in the "
        "API: a tenth of the input frames)", int)
    mixup: bool = _setting(True, "mixup of waveforms and targets")
    mixup_alpha: float = _setting(10.0, "mixup's Beta(alpha, alpha)", float)
    mixup_probability: float = _setting(
        0.25, "share of the clips that are mixed (the authors: 0.5 for "
        "AudioSet, 0.6 for Speech Commands)", float)
    feature_noise: float = _setting(
        0.1, "largest amplitude of uniform noise added to the normalised "
        "features (the authors' Speech Commands `noise` option: 0.1)", float)
    time_roll: int = _setting(
        10, "largest random circular roll of the features along time, in "
        "frames (the authors' `noise` option: 10)", int)
    time_shift: float = _setting(
        0.0, "largest random circular shift of the waveforms, as a share of "
        "the clip", float)
    balanced_sampling: bool = _setting(
        False, "draw training clips with replacement, weighted so that "
        "every label is drawn about equally often (AudioSet-style)")
    # --- data and devices
    seed: int = _setting(0, "shuffling, cropping and augmentation seed", int)
    num_workers: int = _setting(
        0, "Grain decoding processes (ArrayRecord shards)", int)
    data_parallel: Optional[bool] = _setting(
        None, "split batches over all local devices "
        "(keras.distribution.DataParallel; default: when JAX sees several)")
    coordinator: Optional[str] = _setting(
        None, "HOST:PORT of process 0, for training in several processes "
        "(JAX only; every process gets the same address)", str)
    num_processes: int = _setting(
        1, "training processes (one per host), with --coordinator", int)
    process_id: int = _setting(
        0, "this process's index, 0 to num_processes - 1", int)
    # --- outputs
    keep_checkpoints: int = _setting(
        1, "how many of the latest epochs' checkpoints OUTPUT/checkpoints "
        "keeps (weights and optimizer state: about 1 GB each for the "
        "AudioSet model; 0: none; the best epoch's model is kept apart, "
        "see monitor)", int)
    monitor: Optional[str] = _setting(
        None, "the logged value whose best epoch is kept in "
        "OUTPUT/best_preset: val_accuracy, val_map, val_loss, accuracy, map "
        "or loss (default: val_accuracy, or val_map for multi-label data, "
        "when there is validation data; none without)", str)


def fields():
    """`dataclasses.fields(TrainConfig)`, for building command lines."""
    return dataclasses.fields(TrainConfig)


def _like(name, default=dataclasses.MISSING, help=None):
    """`TrainConfig`'s setting `name` (its default and help, unless given),
    for a setting both recipes share."""
    field = TrainConfig.__dataclass_fields__[name]
    return _setting(field.default if default is dataclasses.MISSING
                    else default, help or field.metadata["help"],
                    field.metadata["type"], field.metadata["choices"])


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """How `pretrain` pretrains a backbone on unlabelled audio.

    Masked spectrogram patch modelling (`keras_ast.ASTPretrainer`): the
    settings of the masking, then those `TrainConfig` has too (with the
    same meaning). `keras-ast pretrain` makes one flag per field. The
    instances are frozen: `dataclasses.replace` makes a changed copy.

    Args:
        epochs: passes over the training data.
        batch_size: clips per step, global (over all devices).
        learning_rate: the peak learning rate, after warm-up.
        warmup_fraction: the share of the steps spent warming up.
        mask_ratio: the share of patch tokens masked, in `(0, 1)`.
        masking: `"random"` patches, or `"time_blocks"`: whole time
            columns of the patch grid in blocks of `block_size` (SSAST's
            and EAT's block masking, which suit speech).
        block_size: time columns a block of `"time_blocks"` masking.
        visible_only: the encoder reads only the visible patches
            (Audio-MAE); False: every token, a mask token in the masked
            ones' place (SSAST).
        contrastive_weight: the weight of SSAST's discriminative
            (InfoNCE) term added to the reconstruction loss (0: none; see
            `ASTPretrainer`).
        max_length: input frames (None: the preset's).
        mixed_precision: pretrain under `mixed_bfloat16`.
        remat: gradient checkpointing.
        time_shift: the largest random circular shift of the waveforms, as
            a share of the clip (0: none).
        seed: the shuffling, cropping and masking seed.
        num_workers: Grain decoding processes (ArrayRecord shards).
        data_parallel: split batches over all local devices.
        coordinator: `HOST:PORT` of process 0, for several processes.
        num_processes: training processes (one per host).
        process_id: this process's index.
        keep_checkpoints: how many of the latest epochs' checkpoints
            `OUTPUT/checkpoints` keeps (0: none).
        monitor: the logged value whose best epoch is kept in
            `OUTPUT/best_preset`: `val_loss` or `loss`. None: `val_loss`
            with validation data, none without.

    Examples:
        >>> config = PretrainConfig(epochs=40, masking="time_blocks")
        >>> config.mask_ratio, config.visible_only
        (0.75, True)
    """

    # --- optimisation
    epochs: int = _like("epochs", 20)
    batch_size: int = _like("batch_size", 32)
    learning_rate: float = _setting(
        5e-4, "peak learning rate, after warm-up", float)
    warmup_fraction: float = _like("warmup_fraction")
    # --- masking
    mask_ratio: float = _setting(
        0.75, "share of the patch tokens masked, in (0, 1)", float)
    masking: str = _setting(
        "random", "random patches, or time_blocks: whole time columns of "
        "the patch grid in blocks of --block-size (suits speech)", str,
        choices=("random", "time_blocks"))
    block_size: int = _setting(
        3, "time columns a block of time_blocks masking", int)
    visible_only: bool = _setting(
        True, "the encoder reads only the visible patches (Audio-MAE; "
        "off: every token, mask tokens in the masked ones' place, SSAST)")
    contrastive_weight: float = _setting(
        0.0, "weight of SSAST's discriminative (InfoNCE) term beside the "
        "reconstruction loss (0: none)", float)
    # --- model
    max_length: Optional[int] = _like("max_length")
    mixed_precision: bool = _like("mixed_precision")
    remat: bool = _like("remat")
    # --- augmentation
    time_shift: float = _like("time_shift")
    # --- data and devices
    seed: int = _like("seed", help="shuffling, cropping and masking seed")
    num_workers: int = _like("num_workers")
    data_parallel: Optional[bool] = _like("data_parallel")
    coordinator: Optional[str] = _like("coordinator")
    num_processes: int = _like("num_processes")
    process_id: int = _like("process_id")
    # --- outputs
    keep_checkpoints: int = _like("keep_checkpoints")
    monitor: Optional[str] = _setting(
        None, "the logged value whose best epoch is kept in "
        "OUTPUT/best_preset: val_loss or loss (default: val_loss when there "
        "is validation data; none without)", str)


def pretrain_fields():
    """`dataclasses.fields(PretrainConfig)`, for building command lines."""
    return dataclasses.fields(PretrainConfig)
