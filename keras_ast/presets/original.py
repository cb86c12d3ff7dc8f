"""The AST authors' original checkpoints (`*.pth` files of their code).

Their state dicts name parameters `module.v.*` (a DeiT inside
`torch.nn.DataParallel`) with a fused `qkv` projection, plus
`module.mlp_head.*` for the classifier. This module maps them to the
`transformers` names, from which `convert_transformers` loads them.
"""

import os
import re

import numpy as np

from keras_ast.ops.kaldi import AUDIOSET_MEAN
from keras_ast.ops.kaldi import AUDIOSET_STD
from keras_ast.ops.patches import patch_grid

# Input length and feature statistics of the datasets the authors used.
DATASETS = {
    "audioset": {"max_length": 1024, "mean": AUDIOSET_MEAN,
                 "std": AUDIOSET_STD, "multi_label": True},
    "speechcommands": {"max_length": 128, "mean": -6.845978,
                       "std": 5.5654526, "multi_label": False},
    "esc50": {"max_length": 512, "mean": -6.6268077, "std": 5.358466,
              "multi_label": False},
}
# audioset_10_10_0.4593.pth, speechcommands_10_10_0.9812.pth, ...
FILE_NAME = re.compile(
    r"^(?P<dataset>audioset|speechcommands|esc50)_(?P<frequency_stride>\d+)_"
    r"(?P<time_stride>\d+)_(?P<score>[0-9.]+?)(?:_v\d+)?\.pth$"
)
HF = "audio_spectrogram_transformer."
# Unfused names, original -> transformers, per block.
_BLOCK_NAMES = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_TOP_NAMES = {
    "v.cls_token": HF + "embeddings.cls_token",
    "v.dist_token": HF + "embeddings.distillation_token",
    "v.pos_embed": HF + "embeddings.position_embeddings",
    "v.patch_embed.proj.weight":
        HF + "embeddings.patch_embeddings.projection.weight",
    "v.patch_embed.proj.bias":
        HF + "embeddings.patch_embeddings.projection.bias",
    "v.norm.weight": HF + "layernorm.weight",
    "v.norm.bias": HF + "layernorm.bias",
    "mlp_head.0.weight": "classifier.layernorm.weight",
    "mlp_head.0.bias": "classifier.layernorm.bias",
    "mlp_head.1.weight": "classifier.dense.weight",
    "mlp_head.1.bias": "classifier.dense.bias",
}
# DeiT's own heads, unused by AST.
_UNUSED = re.compile(r"^v\.(head|head_dist)\.")
_BLOCK = re.compile(r"^v\.blocks\.(\d+)\.(.+)\.(weight|bias)$")


def read_pth(path):
    """Tensors of a `.pth` state dict, read with `weights_only=True`.

    A file whose pickle would import or call anything but tensors is
    refused before any of it runs.
    """
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"Refusing to load {path}: its pickle would run code or build "
            "objects other than tensors, which a checkpoint never needs. "
            f"({str(error).splitlines()[0]})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict.")
    return {name: value.float().numpy() for name, value in state.items()}


def to_transformers(state_dict):
    """Maps original parameter names (and the fused qkv) to transformers'.

    Args:
        state_dict: name -> array, as `read_pth` returns.

    Returns:
        name -> array with `transformers` names.
    """
    mapped = {}
    for name, value in state_dict.items():
        name = name[len("module."):] if name.startswith("module.") else name
        if _UNUSED.match(name):
            continue
        if name in _TOP_NAMES:
            mapped[_TOP_NAMES[name]] = value
            continue
        block = _BLOCK.match(name)
        if block is None:
            raise ValueError(f"Unknown parameter {name!r} in the checkpoint.")
        index, module, kind = block.groups()
        prefix = f"{HF}encoder.layer.{index}."
        if module == "attn.qkv":
            query, key, value_part = np.split(value, 3, axis=0)
            for part, array in (("query", query), ("key", key),
                                ("value", value_part)):
                mapped[f"{prefix}attention.attention.{part}.{kind}"] = array
        elif module in _BLOCK_NAMES:
            mapped[f"{prefix}{_BLOCK_NAMES[module]}.{kind}"] = value
        else:
            raise ValueError(f"Unknown parameter {name!r} in the checkpoint.")
    return mapped


def geometry_from_file_name(path):
    """Strides, input length and statistics the authors' file name implies.

    Returns `None` for a name that does not follow their pattern.

    Examples:
    >>> geometry_from_file_name("audioset_10_10_0.4593.pth")["max_length"]
    1024
    """
    match = FILE_NAME.match(os.path.basename(path))
    if match is None:
        return None
    geometry = dict(DATASETS[match["dataset"]])
    geometry["dataset"] = match["dataset"]
    geometry["frequency_stride"] = int(match["frequency_stride"])
    geometry["time_stride"] = int(match["time_stride"])
    return geometry


def transformers_config(state_dict, frequency_stride, time_stride,
                        max_length, num_mel_bins=128, num_heads=None,
                        labels=None):
    """A transformers `config.json` dict that fits mapped original weights.

    Width, depth, patch size and label count come from the tensors; the
    geometry from the arguments, checked against the position embeddings.
    """

    projection = state_dict[
        HF + "embeddings.patch_embeddings.projection.weight"]
    hidden, _, patch, _ = projection.shape
    layers = 1 + max(
        int(name.split(".")[3]) for name in state_dict
        if name.startswith(HF + "encoder.layer.")
    )
    intermediate = state_dict[
        f"{HF}encoder.layer.0.intermediate.dense.weight"].shape[0]
    num_classes = state_dict["classifier.dense.weight"].shape[0]
    grid = patch_grid(num_mel_bins, max_length, patch, frequency_stride,
                      time_stride)
    positions = state_dict[HF + "embeddings.position_embeddings"].shape[1]
    if positions != grid[0] * grid[1] + 2:
        raise ValueError(
            f"The checkpoint's position embeddings hold {positions} "
            f"positions, but strides {frequency_stride}/{time_stride} and "
            f"max_length {max_length} make {grid[0] * grid[1] + 2}. Pass the "
            "geometry it was trained with (--frequency-stride, "
            "--time-stride, --max-length)."
        )
    num_heads = num_heads or int(hidden) // 64  # DeiT's head width
    if not num_heads or hidden % num_heads:
        raise ValueError(
            f"Cannot split width {hidden} into {num_heads} attention heads; "
            "pass the number of heads the model had (--num-heads)."
        )
    if labels is not None and len(labels) != num_classes:
        raise ValueError(
            f"Got {len(labels)} labels for a {num_classes}-class head."
        )
    labels = labels or [f"LABEL_{i}" for i in range(num_classes)]
    return {
        "model_type": "audio-spectrogram-transformer",
        "architectures": ["ASTForAudioClassification"],
        "hidden_size": int(hidden),
        "num_hidden_layers": layers,
        "num_attention_heads": num_heads,
        "intermediate_size": int(intermediate),
        "hidden_act": "gelu",
        "patch_size": int(patch),
        "frequency_stride": frequency_stride,
        "time_stride": time_stride,
        "max_length": max_length,
        "num_mel_bins": num_mel_bins,
        "layer_norm_eps": 1e-12,
        "qkv_bias": True,
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
    }
