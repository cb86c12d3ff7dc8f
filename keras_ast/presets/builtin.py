"""The published AST checkpoints, by name.

Each name maps to a Hugging Face hub repository in the `transformers`
format; `from_preset(name)` downloads it through `huggingface_hub` (its
cache, its progress bars, `HF_HUB_OFFLINE=1` honoured) and converts it on
the fly. Parameter counts are those of the classifier (backbone and head).
"""

AUDIOSET = "AudioSet (527 classes, multi-label)"


def _audioset(score, stride, count, note=""):
    return {
        "hf_repo": None,  # filled below from the name
        "description": (
            f"AST fine-tuned on {AUDIOSET}, patch strides {stride}/{stride}, "
            f"1024 frames (10.24 s); reported {score} mAP on the AudioSet "
            f"evaluation set{note}."
        ),
        "parameter_count": count,
        "score": {"metric": "mAP", "value": float(score),
                  "dataset": "AudioSet"},
        "frequency_stride": stride,
        "time_stride": stride,
        "max_length": 1024,
        "num_classes": 527,
    }


BUILTIN_PRESETS = {
    "ast_audioset_10_10_0.4593": _audioset(
        "0.4593", 10, 86_594_063, ", the authors' best single model"),
    "ast_audioset_10_10_0.450": _audioset("0.450", 10, 86_594_063),
    "ast_audioset_10_10_0.448": _audioset("0.448", 10, 86_594_063),
    "ast_audioset_10_10_0.448_v2": _audioset("0.448", 10, 86_594_063,
                                             " (second run)"),
    "ast_audioset_12_12_0.447": _audioset("0.447", 12, 86_316_047),
    "ast_audioset_14_14_0.443": _audioset("0.443", 14, 86_167_823),
    "ast_audioset_16_16_0.442": _audioset("0.442", 16, 86_056_463),
    "ast_speech_commands_v2": {
        "hf_repo": "MIT/ast-finetuned-speech-commands-v2",
        "description": (
            "AST fine-tuned on Speech Commands V2 (35 words, single-label), "
            "patch strides 10/10, 128 frames (1.28 s); reported 98.1% "
            "accuracy on its test set."
        ),
        "parameter_count": 85_395_491,
        "score": {"metric": "accuracy", "value": 0.981,
                  "dataset": "Speech Commands V2"},
        "frequency_stride": 10,
        "time_stride": 10,
        "max_length": 128,
        "num_classes": 35,
    },
}
for _name, _preset in BUILTIN_PRESETS.items():
    if _preset["hf_repo"] is None:
        # ast_audioset_10_10_0.448_v2 ->
        # MIT/ast-finetuned-audioset-10-10-0.448-v2
        suffix = _name[len("ast_audioset_"):].replace("_", "-")
        _preset["hf_repo"] = f"MIT/ast-finetuned-audioset-{suffix}"
