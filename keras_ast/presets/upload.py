"""Publishing a keras_ast preset directory on the Hugging Face Hub.

`upload_preset("hf://owner/repo", "my_preset")` creates the repository if
needed and uploads the folder (`keras-ast upload` is the command). The
result loads anywhere with
`keras_ast.ASTClassifier.from_preset("hf://owner/repo")`.

Only the standard library is imported at module level, and uploading never
needs Keras (the preset is checked by reading its JSON); `huggingface_hub`
loads when an upload runs.
"""

import json
import os
import re

HF_PREFIX = "hf://"
# The names `keras_ast.presets.io` writes; repeated here because importing
# preset_io imports Keras.
CONFIG_FILE = "config.json"
FORMAT_NAME = "keras_ast"
WEIGHTS_FILE = "model.weights.h5"
LABELS_FILE = "labels.json"
METADATA_FILE = "metadata.json"
README_FILE = "README.md"
# The Hub's rule for each half of `owner/repo` (letters, digits, `-`, `_`,
# `.`, starting and ending with neither `-` nor `.`; at most 96
# characters), checked here so that a typo fails before any network call.
_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")


def parse_uri(uri):
    """The `owner/repo` of an `hf://owner/repo` URI.

    Raises:
        ValueError: for another scheme (only the Hugging Face Hub is
            supported) or a malformed repository id.

    Examples:
    >>> parse_uri("hf://someone/ast-speech-commands")
    'someone/ast-speech-commands'
    """
    if not uri.startswith(HF_PREFIX):
        scheme = uri.split("://", 1)[0] + "://" if "://" in uri else None
        raise ValueError(
            f"Cannot upload to {uri!r}: "
            + (f"{scheme} is not supported; " if scheme else "")
            + "only the Hugging Face Hub is supported, as hf://owner/repo "
            "(e.g. hf://someone/ast-speech-commands)."
        )
    repo_id = uri[len(HF_PREFIX):]
    if (not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id
            or repo_id.endswith(".git")):
        raise ValueError(
            f"Malformed Hugging Face URI {uri!r}: expected hf://owner/repo, "
            "each part letters, digits, '-', '_' or '.' (e.g. "
            "hf://someone/ast-speech-commands)."
        )
    return repo_id


def _read_preset_config(preset_dir):
    """The `config.json` of a keras_ast preset directory, checked."""
    config_path = os.path.join(preset_dir, CONFIG_FILE)
    not_a_preset = (
        f"{preset_dir!r} is not a keras_ast preset directory (one written "
        "by `save_to_preset` or `keras-ast convert`): "
    )
    if not os.path.isdir(preset_dir):
        raise FileNotFoundError(not_a_preset + "no such directory.")
    if not os.path.isfile(config_path):
        raise ValueError(not_a_preset + f"it has no {CONFIG_FILE}.")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(
            not_a_preset + f"{config_path} is not readable JSON ({error})."
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ValueError(
            not_a_preset + f'its {CONFIG_FILE} lacks "format": '
            f'"{FORMAT_NAME}" (a transformers checkpoint is converted first: '
            "keras-ast convert --source DIR --output PRESET)."
        )
    if not os.path.isfile(os.path.join(preset_dir, WEIGHTS_FILE)):
        raise ValueError(not_a_preset + f"it has no {WEIGHTS_FILE}.")
    return config


def _read_optional_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def model_card(preset_dir, repo_id):
    """A minimal Hub model card (README.md text) for a preset directory.

    Front matter for the Hub's search (library, task, tags), how to load the
    model, its configuration and its provenance from `metadata.json`; the
    author is expected to complete it.

    Examples:
    >>> print(model_card("ast_sc", "someone/ast-sc").splitlines()[0])
    ---
    """
    config = _read_preset_config(preset_dir)
    backbone = config.get("backbone") or {}
    head = config.get("classifier")
    labels = _read_optional_json(os.path.join(preset_dir, LABELS_FILE))
    metadata = _read_optional_json(
        os.path.join(preset_dir, METADATA_FILE)) or {}
    lines = ["---", "library_name: keras", "tags:", "- keras_ast",
             "- audio-spectrogram-transformer"]
    if head:
        lines.append("pipeline_tag: audio-classification")
    lines.append("---")
    kind = "ASTClassifier" if head else "ASTBackbone"
    lines += [
        f"# {repo_id.split('/', 1)[1]}",
        "",
        "An Audio Spectrogram Transformer preset for keras_ast (Keras 3: "
        "JAX, TensorFlow or PyTorch).",
        "",
        "```python",
        "import keras_ast",
        "",
        f'model = keras_ast.{kind}.from_preset("hf://{repo_id}")',
        "```",
        "",
    ]
    if head:
        lines.append(
            f"- classes: {head.get('num_classes')}"
            + (" (multi-label)" if head.get("multi_label") else "")
        )
        if isinstance(labels, list) and labels:
            shown = ", ".join(str(label) for label in labels[:10])
            more = f", ... ({len(labels)} in all)" if len(labels) > 10 else ""
            lines.append(f"- labels: {shown}{more}")
    for key in ("hidden_dim", "num_layers", "num_heads", "intermediate_dim",
                "patch_size", "frequency_stride", "time_stride",
                "max_length", "num_mel_bins"):
        if key in backbone:
            lines.append(f"- {key}: {backbone[key]}")
    for key in ("parameter_count", "source",
                "verified_max_abs_logit_difference"):
        if key in metadata:
            lines.append(f"- {key}: {metadata[key]}")
    lines += [
        "",
        "This card was generated automatically by `keras_ast.upload_preset`; "
        "please complete it (training data, intended use, licence). See "
        "https://huggingface.co/docs/hub/model-cards.",
        "",
    ]
    return "\n".join(lines)


def upload_preset(uri, preset_dir):
    """Uploads a keras_ast preset directory to the Hugging Face Hub.

    The repository is created if it does not exist (as a public model repo
    of the logged-in account or organisation: `hf auth login` or
    `HF_TOKEN`). When neither the folder nor the repository has a
    `README.md`, a minimal model card is uploaded beside the files; the
    folder itself is never modified.

    Args:
        uri: `"hf://owner/repo"`. Other schemes (such as `kaggle://`) are
            refused with a `ValueError`.
        preset_dir: a folder written by `save_to_preset` or
            `keras-ast convert` (its `config.json` says
            `"format": "keras_ast"`).

    Returns:
        The `hf://owner/repo` URI, which `from_preset` accepts.

    Raises:
        ValueError: a malformed or non-`hf://` URI, or a folder that is
            not a keras_ast preset (no `config.json` of this format, or no
            weights); checked before any network call.
        FileNotFoundError: `preset_dir` does not exist.
        huggingface_hub.errors.HfHubHTTPError: the Hub refuses the
            repository or the upload (e.g. no token, no write access).

    Examples:
        ```python
        classifier.save_to_preset("ast_sc")
        keras_ast.upload_preset("hf://someone/ast-sc", "ast_sc")
        # 'hf://someone/ast-sc'
        ```
    """
    repo_id = parse_uri(uri)
    preset_dir = os.fspath(preset_dir)
    _read_preset_config(preset_dir)  # refuse before any network call
    import huggingface_hub

    api = huggingface_hub.HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=preset_dir,
                      commit_message="Upload keras_ast preset")
    # A card the author wrote, in the folder or already on the Hub, wins.
    if not os.path.exists(os.path.join(preset_dir, README_FILE)) and not (
        api.file_exists(repo_id, README_FILE)
    ):
        api.upload_file(
            path_or_fileobj=model_card(preset_dir, repo_id).encode("utf-8"),
            path_in_repo=README_FILE, repo_id=repo_id,
            commit_message="Add a model card",
        )
    return HF_PREFIX + repo_id

