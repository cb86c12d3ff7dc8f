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

from keras_ast import convert_transformers
from keras_ast.version import __version__

FORMAT_NAME = "keras_ast"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CONVERTER_FILE = "audio_converter.json"
LABELS_FILE = "labels.json"
METADATA_FILE = "metadata.json"
HF_PREPROCESSOR_FILE = "preprocessor_config.json"
# Backbone arguments that change the shape of some weight.
ARCHITECTURE_KEYS = ("hidden_dim", "num_layers", "num_heads",
                     "intermediate_dim", "patch_size", "frequency_stride",
                     "time_stride", "max_length", "num_mel_bins")


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class TransformersPreset:
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

    def load_weights(self, backbone, classifier=None):
        state_dict = convert_transformers.read_state_dict(self.path)
        convert_transformers.load_state_dict(
            state_dict, backbone, classifier, source=self.path
        )


class KerasPreset:
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

    def load_weights(self, backbone, classifier=None):
        """Loads the stored weights into `backbone` (and `classifier`)."""
        from keras_ast.classifier import ASTClassifier

        stored = self.config["backbone"]
        wanted = backbone.get_config()
        differing = [
            f"{key}={stored[key]} (the model has {wanted[key]})"
            for key in ARCHITECTURE_KEYS
            if key in stored and stored[key] != wanted[key]
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


def load_preset(preset):
    """Opens a preset directory of either format (see the module doc)."""
    path = os.fspath(preset)
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No preset directory at {path!r}.")
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
    os.replace(staging, target)
