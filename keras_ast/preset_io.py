"""Reading and writing preset directories.

Two formats are read:
- the Hugging Face `transformers` format (`config.json` with
  `model_type: audio-spectrogram-transformer`, `preprocessor_config.json`,
  `model.safetensors` or `pytorch_model.bin`);
- the project's own format, written by `save_to_preset`:
  `config.json` (backbone and head configuration), `model.weights.h5`,
  `audio_converter.json`, `labels.json` and `metadata.json`.
"""

import contextlib
import json
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_ast import convert_transformers
from keras_ast.files import publish
from keras_ast.version import __version__

FORMAT_NAME = "keras_ast"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CONVERTER_FILE = "audio_converter.json"
LABELS_FILE = "labels.json"
METADATA_FILE = "metadata.json"
HF_PREPROCESSOR_FILE = "preprocessor_config.json"
# Backbone arguments that only change the patch grid: the position
# embeddings of a preset can be adapted to them.
GEOMETRY_KEYS = ("max_length", "frequency_stride", "time_stride")
# Backbone arguments that change the shape of some weight.
ARCHITECTURE_KEYS = ("hidden_dim", "num_layers", "num_heads",
                     "intermediate_dim", "patch_size", "frequency_stride",
                     "time_stride", "max_length", "num_mel_bins")


def _resize_axis(values, axis, size):
    """Centre crop (smaller) or linear interpolation (larger) along `axis`.

    The interpolation is that of `torch.nn.functional.interpolate(...,
    mode="bilinear", align_corners=False)`, which the authors used.
    """
    old = values.shape[axis]
    if size == old:
        return values
    if size < old:
        start = old // 2 - size // 2
        return np.take(values, np.arange(start, start + size), axis=axis)
    source = np.maximum((np.arange(size) + 0.5) * old / size - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(int), old - 1)
    high = np.minimum(low + 1, old - 1)
    shape = [1] * values.ndim
    shape[axis] = size
    weight = (source - low).reshape(shape)
    return (np.take(values, low, axis=axis) * (1 - weight)
            + np.take(values, high, axis=axis) * weight)


def adapt_position_embedding(table, old_grid, new_grid):
    """Fits AST position embeddings to another patch grid.

    The AST authors' rule: the [CLS] and distillation rows stay as they are;
    the `(F', T')` grid of the others is cut at the centre along an axis
    that shrinks and bilinearly interpolated along one that grows, time
    first, then frequency.

    Args:
        table: `(1, 2 + F * T, dim)` position embeddings (frequency-major).
        old_grid: `(F, T)` of `table`.
        new_grid: the wanted `(F', T')`.

    Returns:
        float32 `(1, 2 + F' * T', dim)`.

    Example:
    >>> adapt_position_embedding(np.zeros((1, 1214, 8)), (12, 101),
    ...                          (12, 11)).shape
    (1, 134, 8)
    """
    table = np.asarray(table, dtype=np.float64)
    frequency, time = old_grid
    dim = table.shape[-1]
    if table.shape[1] != frequency * time + 2:
        raise ValueError(
            f"Position embeddings of shape {table.shape} do not hold a "
            f"{frequency}x{time} grid and two tokens."
        )
    grid = table[:, 2:].reshape(1, frequency, time, dim)
    grid = _resize_axis(grid, 2, new_grid[1])
    grid = _resize_axis(grid, 1, new_grid[0])
    adapted = np.concatenate([table[:, :2], grid.reshape(1, -1, dim)], 1)
    return adapted.astype(np.float32)


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def architecture_differences(stored, backbone):
    """`{argument: (stored value, backbone's value)}` where weights differ."""
    wanted = backbone.get_config()
    return {
        key: (stored[key], wanted[key])
        for key in ARCHITECTURE_KEYS
        if key in stored and stored[key] != wanted[key]
    }


class Preset:
    """A preset directory: configs, and weights that load into a model."""

    def load_weights(self, backbone, classifier=None):
        """Loads the weights into `backbone` (and `classifier`'s head).

        A backbone with another input geometry (`max_length`, strides) than
        the preset gets the stored position embeddings adapted to its patch
        grid, as the AST authors did (see `adapt_position_embedding`).
        """
        stored = self.backbone_config()
        changed = set(architecture_differences(stored, backbone))
        if not changed or not changed <= set(GEOMETRY_KEYS):
            # Each format names what does not fit in its own terms.
            self._load_exact(backbone, classifier)
            return
        from keras_ast.backbone import ASTBackbone
        from keras_ast.classifier import ASTClassifier

        stored["dtype"] = backbone.dtype_policy
        source = ASTBackbone(**stored)
        source_head = None
        if classifier is not None:
            source_head = ASTClassifier(
                source, num_classes=classifier.num_classes,
                multi_label=classifier.multi_label,
            )
        self._load_exact(source, source_head)
        for ours, theirs in zip(backbone.weights, source.weights):
            value = keras.ops.convert_to_numpy(theirs)
            if ours is backbone.embedding.position_embedding:
                value = adapt_position_embedding(
                    value, source.token_grid, backbone.token_grid
                )
            ours.assign(value)
        if classifier is not None:
            for layer, twin in ((classifier.head_norm, source_head.head_norm),
                                (classifier.head_dense,
                                 source_head.head_dense)):
                for ours, theirs in zip(layer.weights, twin.weights):
                    ours.assign(theirs)


class TransformersPreset(Preset):
    """A checkpoint directory in the Hugging Face `transformers` format."""

    def __init__(self, path, hf_config):
        self.path = path
        self.hf_config = hf_config
        prep_path = os.path.join(path, HF_PREPROCESSOR_FILE)
        self.prep_config = (
            _read_json(prep_path) if os.path.exists(prep_path) else {}
        )

    def backbone_config(self):
        return convert_transformers.backbone_config(self.hf_config)

    def converter_config(self):
        return convert_transformers.converter_config(
            self.prep_config, self.hf_config
        )

    def head_config(self):
        return convert_transformers.head_config(self.hf_config)

    def _load_exact(self, backbone, classifier=None):
        state_dict = convert_transformers.read_state_dict(self.path)
        convert_transformers.load_state_dict(
            state_dict, backbone, classifier, source=self.path
        )


class KerasPreset(Preset):
    """A directory written by `save_to_preset`."""

    def __init__(self, path, config):
        self.path = path
        self.config = config

    def backbone_config(self):
        return dict(self.config["backbone"])

    def converter_config(self):
        converter_path = os.path.join(self.path, CONVERTER_FILE)
        if os.path.exists(converter_path):
            config = _read_json(converter_path)
        else:
            config = {}
        config.pop("name", None)
        config.pop("dtype", None)
        config.pop("trainable", None)
        backbone = self.config["backbone"]
        config.setdefault("max_length", backbone["max_length"])
        config.setdefault("num_mel_bins", backbone["num_mel_bins"])
        return config

    def head_config(self):
        head = dict(self.config.get("classifier") or {})
        labels_path = os.path.join(self.path, LABELS_FILE)
        if head and os.path.exists(labels_path):
            head["labels"] = _read_json(labels_path)
        return head

    def _load_exact(self, backbone, classifier=None):
        from keras_ast.classifier import ASTClassifier

        differing = [
            f"{key}={theirs} (the model has {ours})"
            for key, (theirs, ours) in architecture_differences(
                self.config["backbone"], backbone).items()
        ]
        if differing:
            raise ValueError(
                f"The weights in {self.path} do not fit the model: they were "
                "saved for " + ", ".join(differing) + "."
            )
        head = self.head_config()
        target = classifier
        if target is None and head:
            # The file holds a classifier: load it through a stand-in head.
            target = ASTClassifier(backbone, **head)
        elif target is None:
            target = backbone
        weights_path = os.path.join(self.path, WEIGHTS_FILE)
        try:
            target.load_weights(weights_path)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"The weights in {weights_path} do not fit the model: {error}"
            ) from error


class PresetNotFoundError(FileNotFoundError):
    """A preset that is neither local, nor cached, nor reachable."""


def download(repo_id):
    """A hub repository's preset files, through the `huggingface_hub` cache.

    Only configs and weights are fetched: safetensors or `.weights.h5`
    where the repository has them, `pytorch_model.bin` only otherwise.
    `HF_HUB_OFFLINE=1` makes this use the cache alone.
    """
    import huggingface_hub

    def fetch(patterns):
        return huggingface_hub.snapshot_download(repo_id,
                                                 allow_patterns=patterns)

    try:
        path = fetch(["*.json", "*.safetensors", "*.weights.h5"])
        if not any(
            os.path.exists(os.path.join(path, name))
            for name in ("model.safetensors", WEIGHTS_FILE)
        ):
            path = fetch(["pytorch_model.bin"])
    except Exception as error:  # the hub's errors differ across versions
        offline = huggingface_hub.constants.HF_HUB_OFFLINE
        raise PresetNotFoundError(
            f"Could not get the preset hf://{repo_id}: "
            + (
                "it is not in the local Hugging Face cache "
                f"({huggingface_hub.constants.HF_HUB_CACHE}) and "
                "HF_HUB_OFFLINE=1 forbids downloading it. "
                if offline
                else "it is not in the local Hugging Face cache and the "
                "hub did not provide it (no network, a wrong name, or a "
                "private repository without a token). "
            )
            + "Download it where the hub is reachable (`hf download "
            f"{repo_id}`, then copy the cache), or pass a local directory. "
            f"({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    return path


def resolve(preset):
    """A local directory for a built-in name, `hf://owner/repo` or a path."""
    from keras_ast.presets import BUILTIN_PRESETS

    preset = os.fspath(preset)
    if preset in BUILTIN_PRESETS:
        preset = "hf://" + BUILTIN_PRESETS[preset]["hf_repo"]
    if preset.startswith("hf://"):
        return download(preset[len("hf://"):])
    if not os.path.isdir(preset):
        raise PresetNotFoundError(
            f"Unknown preset {preset!r}: not a built-in name (see "
            "ASTClassifier.presets), not hf://owner/repo, and no directory "
            "of that name exists."
        )
    return preset


def load_preset(preset):
    """Opens a preset of either format (see the module doc).

    Args:
        preset: a built-in name (`keras_ast.presets.BUILTIN_PRESETS`),
            `hf://owner/repo`, or a local directory.
    """
    path = resolve(preset)
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{path!r} is not a preset: it has no {CONFIG_FILE}."
        )
    config = _read_json(config_path)
    if config.get("format") == FORMAT_NAME:
        return KerasPreset(path, config)
    if "model_type" in config:
        return TransformersPreset(path, config)
    raise ValueError(
        f"{config_path} is neither a keras_ast preset nor a transformers AST "
        "config."
    )


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a temporary directory that replaces `path` when done.

    Readers never see a half-written directory: it is renamed into place
    only after everything was written, and removed on failure.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(
        os.path.join(path, METADATA_FILE)
    ):
        raise FileExistsError(
            f"{path} exists and is not a keras_ast preset; refusing to "
            "overwrite it."
        )
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield staging
        publish(staging)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rename(path, os.path.join(old, "preset"))
            os.rename(staging, path)
            shutil.rmtree(old)
        else:
            os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def save_preset(preset_dir, backbone, classifier=None, metadata=None):
    """Writes a backbone (and classifier) as a keras_ast preset directory."""
    config = {
        "format": FORMAT_NAME,
        "format_version": 1,
        "backbone": backbone.get_config(),
    }
    config["backbone"].pop("name", None)
    config["backbone"].pop("trainable", None)
    if classifier is not None:
        config["classifier"] = {
            "num_classes": classifier.num_classes,
            "multi_label": classifier.multi_label,
            "dropout": classifier.dropout,
        }
    info = {
        "keras_ast_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.config.backend(),
        "parameter_count": int((classifier or backbone).count_params()),
    }
    info.update(metadata or {})
    with atomic_directory(preset_dir) as staging:
        _write_json(os.path.join(staging, CONFIG_FILE), config)
        (classifier or backbone).save_weights(
            os.path.join(staging, WEIGHTS_FILE)
        )
        if classifier is not None and classifier.preprocessor is not None:
            _write_json(os.path.join(staging, CONVERTER_FILE),
                        classifier.preprocessor.get_config())
        if classifier is not None and classifier.labels is not None:
            _write_json(os.path.join(staging, LABELS_FILE), classifier.labels)
        _write_json(os.path.join(staging, METADATA_FILE), info)


def save_converter_config(converter, preset_dir):
    """Adds (or replaces) the converter config of an existing preset."""
    os.makedirs(preset_dir, exist_ok=True)
    target = os.path.join(preset_dir, CONVERTER_FILE)
    fd, staging = tempfile.mkstemp(prefix=".tmp-", dir=preset_dir)
    os.close(fd)
    _write_json(staging, converter.get_config())
    publish(staging)
    os.replace(staging, target)
