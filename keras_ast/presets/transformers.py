"""Reading Hugging Face `transformers` AST checkpoints into keras_ast models.

Covers the on-disk format of `ASTForAudioClassification` / `ASTModel`
(`config.json`, `preprocessor_config.json`, `model.safetensors` or
`pytorch_model.bin`), which the `MIT/ast-finetuned-*` repositories use.
"""

import os
import re

import numpy as np

from keras_ast.ops.patches import adapt_position_embedding

PREFIX = "audio_spectrogram_transformer."
AUDIOSET_NUM_CLASSES = 527

# transformers 5.x names modules differently in memory; a state dict taken
# from such a model is mapped back to the names every checkpoint file uses.
_IN_MEMORY_NAMES = [
    (r"\.layers\.(\d+)\.attention\.q_proj\.",
     r".encoder.layer.\1.attention.attention.query."),
    (r"\.layers\.(\d+)\.attention\.k_proj\.",
     r".encoder.layer.\1.attention.attention.key."),
    (r"\.layers\.(\d+)\.attention\.v_proj\.",
     r".encoder.layer.\1.attention.attention.value."),
    (r"\.layers\.(\d+)\.attention\.o_proj\.",
     r".encoder.layer.\1.attention.output.dense."),
    (r"\.layers\.(\d+)\.mlp\.fc1\.", r".encoder.layer.\1.intermediate.dense."),
    (r"\.layers\.(\d+)\.mlp\.fc2\.", r".encoder.layer.\1.output.dense."),
    (r"\.layers\.(\d+)\.", r".encoder.layer.\1."),
]


def backbone_config(hf_config):
    """`ASTBackbone` arguments from a transformers `config.json` dict."""
    model_type = hf_config.get("model_type")
    if model_type != "audio-spectrogram-transformer":
        raise ValueError(
            "config.json is not an Audio Spectrogram Transformer config "
            f"(model_type={model_type!r})."
        )
    activation = hf_config.get("hidden_act", "gelu")
    if activation != "gelu":
        raise ValueError(
            f"Unsupported hidden_act {activation!r}: keras_ast implements the "
            "exact GELU of the AST checkpoints."
        )
    if not hf_config.get("qkv_bias", True):
        raise ValueError("Unsupported qkv_bias=False: AST uses q/k/v biases.")
    patch_size = hf_config.get("patch_size", 16)
    if isinstance(patch_size, (list, tuple)):
        if len(set(patch_size)) != 1:
            raise ValueError(f"Unsupported non-square patch {patch_size}.")
        patch_size = patch_size[0]
    return {
        "hidden_dim": hf_config.get("hidden_size", 768),
        "num_layers": hf_config.get("num_hidden_layers", 12),
        "num_heads": hf_config.get("num_attention_heads", 12),
        "intermediate_dim": hf_config.get("intermediate_size", 3072),
        "patch_size": patch_size,
        "frequency_stride": hf_config.get("frequency_stride", 10),
        "time_stride": hf_config.get("time_stride", 10),
        "max_length": hf_config.get("max_length", 1024),
        "num_mel_bins": hf_config.get("num_mel_bins", 128),
        "layer_norm_epsilon": hf_config.get("layer_norm_eps", 1e-12),
        "dropout": hf_config.get("hidden_dropout_prob", 0.0),
        "attention_dropout": hf_config.get(
            "attention_probs_dropout_prob", 0.0
        ),
    }


def converter_config(preprocessor_config, hf_config):
    """`ASTAudioConverter` arguments from `preprocessor_config.json`."""
    config = {
        "max_length": hf_config.get("max_length", 1024),
        "num_mel_bins": hf_config.get("num_mel_bins", 128),
    }
    for key in ("sampling_rate", "num_mel_bins", "max_length", "mean", "std",
                "do_normalize"):
        if key in preprocessor_config:
            config[key] = preprocessor_config[key]
    return config


def head_config(hf_config):
    """Classifier head arguments: classes, labels and multi-label flag.

    `problem_type` decides multi-label where the config has it; otherwise a
    527-class head is taken for AudioSet (multi-label) and any other for a
    single-label task, which matches every MIT checkpoint.
    """
    id2label = hf_config.get("id2label")
    if not id2label:
        return {}
    labels = [id2label[key] for key in sorted(id2label, key=int)]
    problem_type = hf_config.get("problem_type")
    if problem_type == "multi_label_classification":
        multi_label = True
    elif problem_type == "single_label_classification":
        multi_label = False
    else:
        multi_label = len(labels) == AUDIOSET_NUM_CLASSES
    return {"num_classes": len(labels), "labels": labels,
            "multi_label": multi_label}


def read_state_dict(path):
    """Tensors of a transformers checkpoint directory, as NumPy arrays.

    `model.safetensors` is preferred; `pytorch_model.bin` is read with
    `torch.load(weights_only=True)`, which refuses pickles that would run
    code.
    """
    safetensors_path = os.path.join(path, "model.safetensors")
    if os.path.exists(safetensors_path):
        from safetensors.numpy import load_file

        return load_file(safetensors_path)
    bin_path = os.path.join(path, "pytorch_model.bin")
    if os.path.exists(bin_path):
        try:
            import torch
        except ImportError as error:
            raise ImportError(
                f"{bin_path} is a PyTorch pickle; reading it needs torch "
                "(`pip install keras-ast[torch]`), or convert the checkpoint "
                "to model.safetensors."
            ) from error
        try:
            state = torch.load(bin_path, map_location="cpu",
                               weights_only=True)
        except Exception as error:
            raise ValueError(
                f"Refusing to load {bin_path}: it is not a plain tensor "
                f"checkpoint ({error})."
            ) from error
        return {k: v.float().numpy() for k, v in state.items()}
    raise FileNotFoundError(
        f"No weights in {path}: expected model.safetensors or "
        "pytorch_model.bin."
    )


def _normalize_names(state_dict):
    if not any(name.startswith(PREFIX) for name in state_dict):
        # An `ASTModel` checkpoint: backbone names without the prefix.
        state_dict = {
            (name if name.startswith("classifier.") else PREFIX + name): value
            for name, value in state_dict.items()
        }
    normalized = {}
    for name, value in state_dict.items():
        for pattern, replacement in _IN_MEMORY_NAMES:
            name = re.sub(pattern, replacement, name)
        normalized[name] = value
    return normalized


def _linear(layer, name):
    return [
        (f"{name}.weight", layer.kernel, np.transpose),
        (f"{name}.bias", layer.bias, None),
    ]


def _norm(layer, name):
    return [
        (f"{name}.weight", layer.gamma, None),
        (f"{name}.bias", layer.beta, None),
    ]


def backbone_weight_map(backbone, stored_grid=None):
    """`(checkpoint name, keras variable, transform)` for the backbone.

    With `stored_grid` (the checkpoint's patch grid, where it differs from
    the backbone's), the position embeddings are adapted to the backbone's.
    """
    embedding = backbone.embedding

    def position(table):
        if stored_grid is None:
            return table
        return adapt_position_embedding(table, stored_grid, embedding.grid)

    entries = [
        (PREFIX + "embeddings.cls_token", embedding.cls_token, None),
        (PREFIX + "embeddings.distillation_token",
         embedding.distillation_token, None),
        (PREFIX + "embeddings.position_embeddings",
         embedding.position_embedding, position),
        # torch OIHW (O, 1, freq, time) -> keras HWIO.
        (PREFIX + "embeddings.patch_embeddings.projection.weight",
         embedding.projection.kernel, lambda w: np.transpose(w, (2, 3, 1, 0))),
        (PREFIX + "embeddings.patch_embeddings.projection.bias",
         embedding.projection.bias, None),
    ]
    for index, layer in enumerate(backbone.encoder_layers):
        name = f"{PREFIX}encoder.layer.{index}."
        entries += _linear(layer.query, name + "attention.attention.query")
        entries += _linear(layer.key, name + "attention.attention.key")
        entries += _linear(layer.value, name + "attention.attention.value")
        entries += _linear(layer.attention_output,
                           name + "attention.output.dense")
        entries += _linear(layer.intermediate, name + "intermediate.dense")
        entries += _linear(layer.output_dense, name + "output.dense")
        entries += _norm(layer.norm_before, name + "layernorm_before")
        entries += _norm(layer.norm_after, name + "layernorm_after")
    entries += _norm(backbone.final_norm, PREFIX + "layernorm")
    return entries


def head_weight_map(classifier):
    """`(checkpoint name, keras variable, transform)` for the head."""
    return (_norm(classifier.head_norm, "classifier.layernorm")
            + _linear(classifier.head_dense, "classifier.dense"))


def load_state_dict(state_dict, backbone=None, head=None, source="",
                    stored_grid=None):
    """Assigns a transformers state dict to a backbone and / or a head.

    Every parameter the model needs must be present with the right shape;
    a mismatch raises an error that names the parameter, before anything
    is assigned.

    Args:
        state_dict: checkpoint name -> array.
        backbone: an `ASTBackbone` to fill, or None.
        head: an `ASTClassifier` whose head to fill, or None.
        source: where the checkpoint came from, for error messages.
        stored_grid: the checkpoint's patch grid where it differs from the
            backbone's (see `backbone_weight_map`).
    """
    state_dict = _normalize_names(state_dict)
    entries = []
    if backbone is not None:
        entries += backbone_weight_map(backbone, stored_grid)
    if head is not None:
        entries += head_weight_map(head)
    needed = {name for name, _, _ in entries}
    missing = sorted(needed - set(state_dict))
    if missing:
        raise ValueError(
            f"The checkpoint {source} lacks {len(missing)} parameter(s) the "
            f"model needs, e.g. {missing[:3]}. Is it an AST checkpoint with "
            "this configuration?"
        )
    unexpected = sorted(
        name for name in set(state_dict) - needed
        if backbone is not None and not name.startswith("classifier.")
    )
    if unexpected:
        raise ValueError(
            f"The checkpoint {source} has parameter(s) this model does not "
            f"have, e.g. {unexpected[:3]}; is num_layers right?"
        )
    values = []
    for name, variable, transform in entries:
        value = np.asarray(state_dict[name])
        if transform is not None:
            value = transform(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Checkpoint parameter {name!r} has shape "
                f"{tuple(state_dict[name].shape)}, which does not fit the "
                f"model's {variable.path} of shape {tuple(variable.shape)} "
                "(check max_length, strides, hidden size and label count)."
            )
        values.append((variable, value))
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
