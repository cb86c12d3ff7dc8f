"""Finding, reading and writing preset directories.

A preset is named by a built-in name (`keras_ast.presets.builtin`), a hub
repository (`hf://owner/repo` or a bare `owner/repo`) or a local
directory, in one of two formats:
- the Hugging Face `transformers` format (`config.json` with
  `model_type: audio-spectrogram-transformer`, `preprocessor_config.json`,
  `model.safetensors` or `pytorch_model.bin`);
- the project's own format, written by `save_to_preset`: `config.json`
  (backbone and head arguments, `format_version`), `model.weights.h5` (the
  backbone), `task.weights.h5` (the classification head),
  `audio_converter.json`, `labels.json` and `metadata.json`.

Format versions of keras_ast presets:
- 4 (what `save_preset` writes for a classifier whose head pools other
  than `"cls"`): version 2 or 3 with the head's `pooling` in
  `config.json`'s `classifier` entry, so that a keras_ast that pools the
  [CLS] token alone refuses the preset instead of computing other
  logits. A head without the entry (every earlier preset) pools `"cls"`.
- 3 (what `save_preset` writes for a quantized model): version 2 with a
  `quantization` entry in `config.json` (see below), so that a keras_ast
  that cannot rebuild a quantized model refuses the preset.
- 2 (what `save_preset` writes for a float model): backbone and head
  weights in separate files, so a backbone loads alone and a new head
  skips the stored one.
- 1: one `model.weights.h5` holding the classifier
  (or the backbone alone). Still read: the backbone's part is copied out of
  it into a temporary file, and the head is read from it with the backbone
  skipped.

A model quantized with Keras' `quantize` (`"int8"`, `"int4"`,
`"float8"`) stores its quantized weights; `config.json` then says, for
each part quantized (`"backbone"`, `"head"`), Keras' quantization config
of its `keras.layers.Dense` layers:
`"quantization": {"backbone": {"mode": "int8", "config": {...}}}`. A
loader builds the float model, quantizes those parts the same way, then
loads the stored weights, so the model it gives is the quantized one. A
new head (another `num_classes`) stays float.

Presets and `.keras` files share this record: `ASTBackbone.get_config`
and `ASTClassifier.get_config` hold their part's `quantization_of` (only
when quantized), and their `from_config` builds the float model, then
`quantize_like`. A preset keeps the backbone's entry in its own
`quantization` entry, and `KerasPresetLoader.backbone_config` hands it
back to `from_config`.

A backbone preset may record the pooling a new head on it takes by
default (`default_pooling` in `config.json`, `save_preset`'s `pooling`):
`"mean"` for a self-supervised backbone, whose [CLS] and distillation
tokens no objective trained. Readers that do not know the entry ignore it
and pool `"cls"`, which is still a valid model.

The loaders are handed the classes they build (`load_backbone(cls, ...)`)
and never import the model modules, which import this one.
"""

import json
import os
import re
import tempfile

import keras

from keras_ast.ops.patches import adapt_position_embedding
from keras_ast.ops.patches import patch_grid
from keras_ast.presets import transformers as convert_transformers
from keras_ast.utils.files import atomic_directory
from keras_ast.utils.files import read_json
from keras_ast.utils.files import write_json
from keras_ast.version import __version__

FORMAT_NAME = "keras_ast"
FORMAT_VERSION = 2
# What a preset of a quantized model is written as (see the module doc).
QUANTIZED_FORMAT_VERSION = 3
# What a preset of a head pooled other than "cls" is written as.
POOLING_FORMAT_VERSION = 4
# What a classifier head pools: "cls", the mean of the [CLS] and
# distillation tokens (the MIT checkpoints), or "mean", the mean of the
# patch tokens (`keras_ast.models.backbone`).
POOLINGS = ("cls", "mean")
CONFIG_FILE = "config.json"
MODEL_WEIGHTS_FILE = "model.weights.h5"
TASK_WEIGHTS_FILE = "task.weights.h5"
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
# Quantization modes a preset rebuilds from Keras' config alone (GPTQ and
# AWQ quantize with calibration data).
QUANTIZATION_MODES = ("int8", "int4", "float8")
# owner/repo as the hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def architecture_differences(stored, backbone):
    """`{argument: (stored value, backbone's value)}` where weights differ."""
    # The attributes, not get_config(): Keras' serialisation of the dtype
    # policy imports TensorFlow, where installed, under every backend.
    return {
        key: (stored[key], getattr(backbone, key))
        for key in ARCHITECTURE_KEYS
        if key in stored and stored[key] != getattr(backbone, key)
    }


def _grid(config):
    return patch_grid(config["num_mel_bins"], config["max_length"],
                      config.get("patch_size", 16),
                      config["frequency_stride"], config["time_stride"])


def _not_task_weights(classifier):
    """What `task.weights.h5` leaves out: the backbone and training state."""
    skipped = [classifier.backbone]  # and, with it, all it holds
    if classifier.optimizer is not None:
        skipped.append(classifier.optimizer)
    return skipped


def is_dense(layer):
    """Whether `layer` is a `keras.layers.Dense` (subclasses included).

    The layers keras_ast quantizes: a `filters` for Keras' `quantize`.

    Args:
        layer: a layer.

    Returns:
        A bool.

    Examples:
    >>> is_dense(keras.layers.Dense(2)), is_dense(keras.layers.Dropout(0.1))
    (True, False)
    """
    return isinstance(layer, keras.layers.Dense)


def dense_layers(model, skip=()):
    """Every `keras.layers.Dense` that `model` holds, once each.

    Layers are found through the public attributes of `model` and of each
    layer it holds (lists of layers included), and a model's `layers`.

    Args:
        model: a layer or model.
        skip: layers left out, with all they hold.

    Returns:
        A list of `keras.layers.Dense` (subclasses included).

    Examples:
    >>> model = keras.Sequential([keras.layers.Dense(2)])
    >>> model.build((None, 3))
    >>> [layer.units for layer in dense_layers(model)]
    [2]
    """
    found, seen = [], {id(layer) for layer in skip}
    pending = [model]
    while pending:
        layer = pending.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if is_dense(layer):
            found.append(layer)
            continue
        pending.extend(reversed(_held_layers(layer)))
    return found


def _held_layers(layer):
    """The layers in `layer`'s public attributes (and lists of them), and
    a model's `layers`."""
    own = vars(layer)
    held = list(layer.layers) if isinstance(layer, keras.Model) else []
    for name in dir(layer):
        if name.startswith("_"):
            continue
        if name in own:
            value = own[name]
        elif any(name in vars(kind) for kind in type(layer).__mro__):
            continue  # a method or property, not something held
        else:
            # Held elsewhere than the instance's dict: PyTorch's modules
            # keep their submodules apart, and answer for them by name.
            value = getattr(layer, name, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        held.extend(item for item in values
                    if isinstance(item, keras.layers.Layer))
    return held


def quantization_of(model, skip=()):
    """How `model`'s Dense layers are quantized, as keras_ast records it.

    Args:
        model: a built layer or model.
        skip: layers left out (`dense_layers`), e.g. a classifier's
            backbone, for its head alone.

    Returns:
        None where no Dense layer is quantized, else
        `{"mode": mode, "config": config}`, with Keras' quantization
        config serialized (`keras.saving.serialize_keras_object`).

    Raises:
        ValueError: some Dense layers are quantized and others not, or
            quantized in different ways, or in a mode outside
            `QUANTIZATION_MODES`.

    Examples:
    >>> model = keras.Sequential([keras.layers.Dense(2)])
    >>> model.build((None, 3))
    >>> quantization_of(model) is None
    True
    >>> model.quantize("int8")
    >>> quantization_of(model)["mode"]
    'int8'
    """
    ways = {}
    for layer in dense_layers(model, skip):
        way = None
        if layer.quantization_mode is not None:
            way = json.dumps(_unshared(keras.saving.serialize_keras_object(
                layer.quantization_config)), sort_keys=True)
        ways.setdefault(way, []).append(layer)
    if set(ways) <= {None}:
        return None
    if len(ways) > 1:
        kinds = "; ".join(
            f"{layers[0].quantization_mode or 'float'}: "
            + ", ".join(layer.path for layer in layers[:3])
            + (", ..." if len(layers) > 3 else "")
            for layers in ways.values())
        raise ValueError(
            f"{model.name} mixes Dense layers quantized in different ways "
            f"({kinds}); keras_ast saves (presets, `.keras` files) a part "
            "whose Dense layers are all quantized alike, or none."
        )
    (way, layers), = ways.items()
    mode = layers[0].quantization_mode
    if mode not in QUANTIZATION_MODES:
        raise ValueError(
            f"{model.name} is quantized in mode {mode!r}; keras_ast saves "
            f"the modes {', '.join(QUANTIZATION_MODES)}."
        )
    return {"mode": mode, "config": json.loads(way)}


def _unshared(config):
    """A serialized config without the marks of objects shared with
    others serialized in the same scope (as when `model.save` runs)."""
    if isinstance(config, dict):
        return {key: _unshared(value) for key, value in config.items()
                if key != "shared_object_id"}
    if isinstance(config, list):
        return [_unshared(value) for value in config]
    return config


def quantize_like(model, quantization, skip=()):
    """Quantizes `model`'s Dense layers as `quantization_of` described.

    Args:
        model: a built layer or model, in float.
        quantization: what `quantization_of` returned (None: nothing to
            do).
        skip: layers left as they are (`dense_layers`).

    Examples:
    >>> model = keras.Sequential([keras.layers.Dense(2)])
    >>> model.build((None, 3))
    >>> quantize_like(model, {"mode": "int8", "config": None})
    >>> model.layers[0].quantization_mode
    'int8'
    """
    if not quantization:
        return
    config = quantization.get("config")
    if config is not None:
        config = keras.saving.deserialize_keras_object(config)
    targets = {id(layer) for layer in dense_layers(model, skip)}
    model.quantize(quantization["mode"], config=config,
                   filters=lambda layer: id(layer) in targets)


class PresetLoader:
    """A preset directory: its configs, and weights that load into models.

    Subclasses say where the configs and weights are
    (`backbone_config`, `converter_config`, `head_config`,
    `_load_backbone_weights`, `_load_head_weights`).
    """

    def __init__(self, path):
        self.path = path

    def quantization(self):
        """`{part: quantization_of(...)}` of the stored model (the module
        doc); `{}` for a float one."""
        return {}

    def default_pooling(self):
        """The pooling a new head on this backbone takes by default
        (`POOLINGS`), or None where the preset records none."""
        return None

    def stored_grid(self, backbone):
        """The stored patch grid where only the geometry differs, else None.

        Where architecture arguments other than the geometry differ, the
        weights cannot fit; the format's own loading names what does not.
        """
        changed = set(architecture_differences(self.backbone_config(),
                                               backbone))
        if changed and changed <= set(GEOMETRY_KEYS):
            return _grid(self.backbone_config())
        return None

    def load_backbone(self, cls, load_weights=True, **kwargs):
        """Builds `cls` (an `ASTBackbone` class) from the stored arguments.

        `kwargs` override them; another `max_length` or other strides get
        the stored position embeddings adapted to the new patch grid
        (`keras_ast.ops.patches.adapt_position_embedding`).
        """
        config = self.backbone_config()
        config.update(kwargs)
        backbone = cls.from_config(config)  # quantized as stored
        if load_weights:
            self._load_backbone_weights(backbone, self.stored_grid(backbone))
        return backbone

    def load_classifier(self, cls, load_weights=True, load_task_weights=True,
                        preprocessor=True, head=None, **kwargs):
        """Builds `cls` (an `ASTClassifier` class) with its backbone.

        Args:
            cls: the classifier class; its `backbone_cls` and
                `preprocessor_cls` build the parts.
            load_weights: load the backbone's weights.
            load_task_weights: also load the stored head (when the caller
                keeps it).
            preprocessor: `True` for the stored converter (fitted to the
                backbone's input), `False` for none, or a converter.
            head: classifier arguments (`num_classes`, `labels`, ...).
            **kwargs: backbone overrides.
        """
        backbone = self.load_backbone(cls.backbone_cls, load_weights,
                                      **kwargs)
        if preprocessor is True:
            config = self.converter_config()
            # The features must keep fitting an overridden backbone.
            config["max_length"] = backbone.max_length
            config["num_mel_bins"] = backbone.num_mel_bins
            preprocessor = cls.preprocessor_cls(**config)
        elif preprocessor is False:
            preprocessor = None
        classifier = cls(backbone, preprocessor=preprocessor, **(head or {}))
        if load_task_weights:  # the stored head, quantized as stored
            quantize_like(classifier, self.quantization().get("head"),
                          skip=[backbone])
        if load_weights and load_task_weights:
            self._load_head_weights(classifier)
        return classifier


class TransformersPresetLoader(PresetLoader):
    """A checkpoint directory in the Hugging Face `transformers` format."""

    def __init__(self, path, hf_config):
        super().__init__(path)
        self.hf_config = hf_config
        prep_path = os.path.join(path, HF_PREPROCESSOR_FILE)
        self.prep_config = (
            read_json(prep_path) if os.path.exists(prep_path) else {}
        )
        self._state_dict = None
        self.backbone_config()  # refuses a config that is not AST's

    def backbone_config(self):
        return convert_transformers.backbone_config(self.hf_config)

    def converter_config(self):
        return convert_transformers.converter_config(
            self.prep_config, self.hf_config
        )

    def head_config(self):
        return convert_transformers.head_config(self.hf_config)

    def state_dict(self):
        # Read once: the backbone and the head come from the same file.
        if self._state_dict is None:
            self._state_dict = convert_transformers.read_state_dict(self.path)
        return self._state_dict

    def _load_backbone_weights(self, backbone, stored_grid):
        convert_transformers.load_state_dict(
            self.state_dict(), backbone, source=self.path,
            stored_grid=stored_grid,
        )

    def _load_head_weights(self, classifier):
        convert_transformers.load_state_dict(
            self.state_dict(), head=classifier, source=self.path
        )


class KerasPresetLoader(PresetLoader):
    """A directory written by `save_to_preset` (see the module doc)."""

    def __init__(self, path, config):
        super().__init__(path)
        self.config = config
        self.format_version = int(config.get("format_version", 1))
        if self.format_version > POOLING_FORMAT_VERSION:
            raise ValueError(
                f"{path} is a keras_ast preset of format_version "
                f"{self.format_version}; this keras_ast ({__version__}) "
                f"reads up to {POOLING_FORMAT_VERSION}. Upgrade "
                "keras_ast."
            )
        self._scratch = None

    def quantization(self):
        return dict(self.config.get("quantization") or {})

    def default_pooling(self):
        return self.config.get("default_pooling")

    def backbone_config(self):
        """The backbone's arguments, as `ASTBackbone.get_config` gives them
        (its `quantization` included)."""
        config = dict(self.config["backbone"])
        quantization = self.quantization().get("backbone")
        if quantization:
            config["quantization"] = quantization
        return config

    def converter_config(self):
        converter_path = os.path.join(self.path, CONVERTER_FILE)
        config = (read_json(converter_path)
                  if os.path.exists(converter_path) else {})
        for key in ("name", "dtype", "trainable"):
            config.pop(key, None)
        backbone = self.config["backbone"]
        config.setdefault("max_length", backbone["max_length"])
        config.setdefault("num_mel_bins", backbone["num_mel_bins"])
        return config

    def head_config(self):
        head = dict(self.config.get("classifier") or {})
        labels_path = os.path.join(self.path, LABELS_FILE)
        if head and os.path.exists(labels_path):
            head["labels"] = read_json(labels_path)
        if head:  # a head stored without its pooling pools "cls"
            head.setdefault("pooling", "cls")
        return head

    def _weights_error(self, path, error):
        return ValueError(
            f"The weights in {path} do not fit the model: {error}"
        )

    def _backbone_weights_path(self):
        path = os.path.join(self.path, MODEL_WEIGHTS_FILE)
        if self.format_version >= 2 or not self.config.get("classifier"):
            return path
        # format_version 1 stored the classifier: its backbone group,
        # copied to the top of a file of its own, is a backbone's file.
        import h5py

        self._scratch = tempfile.TemporaryDirectory(prefix="keras-ast-v1-")
        extracted = os.path.join(self._scratch.name, MODEL_WEIGHTS_FILE)
        with h5py.File(path, "r") as source, h5py.File(extracted, "w") as out:
            for key in source["backbone"]:
                source.copy(source["backbone"][key], out, name=key)
        return extracted

    def _load_backbone_weights(self, backbone, stored_grid):
        differing = [
            f"{key}={theirs} (the model has {ours})"
            for key, (theirs, ours) in architecture_differences(
                self.config["backbone"], backbone).items()
        ]
        if differing and stored_grid is None:
            raise ValueError(
                f"The weights in {self.path} do not fit the model: they were "
                "saved for " + ", ".join(differing) + "."
            )
        path = self._backbone_weights_path()
        try:
            if stored_grid is None:
                backbone.load_weights(path)
            else:
                _load_adapted(backbone, self.backbone_config(), path)
        except (ValueError, KeyError) as error:
            raise self._weights_error(path, error) from error

    def _load_head_weights(self, classifier):
        name = TASK_WEIGHTS_FILE if self.format_version >= 2 else (
            MODEL_WEIGHTS_FILE)
        path = os.path.join(self.path, name)
        if not self.config.get("classifier") or not os.path.exists(path):
            raise ValueError(
                f"The preset at {self.path} has no classification head; "
                "pass num_classes=... for a new one."
            )
        try:
            keras.saving.load_weights(
                classifier, path,
                objects_to_skip=_not_task_weights(classifier),
            )
        except (ValueError, KeyError) as error:
            raise self._weights_error(path, error) from error


def _load_adapted(backbone, stored_config, path):
    """Loads weights saved for another patch grid into `backbone`.

    The weights load into a backbone of the stored config (quantized as
    it says), then move over, the position embeddings fitted to
    `backbone`'s grid (`keras_ast.ops.patches.adapt_position_embedding`).
    """
    config = dict(stored_config, dtype=backbone.dtype_policy)
    stored = type(backbone).from_config(config)
    stored.load_weights(path)
    position = backbone.embedding.position_embedding
    for target, source in zip(backbone.weights, stored.weights):
        value = keras.ops.convert_to_numpy(source)
        if target is position:
            value = adapt_position_embedding(value, _grid(stored_config),
                                             backbone.token_grid)
        target.assign(value)


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
            for name in ("model.safetensors", MODEL_WEIGHTS_FILE)
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
    """A local directory for any way of naming a preset (see the module doc).

    A local directory wins over a hub id of the same spelling.
    """
    from keras_ast.presets.builtin import BUILTIN_PRESETS

    preset = os.fspath(preset)
    if preset in BUILTIN_PRESETS:
        preset = "hf://" + BUILTIN_PRESETS[preset]["hf_repo"]
    if preset.startswith("hf://"):
        return download(preset[len("hf://"):])
    if os.path.isdir(preset):
        return preset
    if HUB_ID.match(preset) and not os.path.exists(preset):
        return download(preset)
    raise PresetNotFoundError(
        f"Unknown preset {preset!r}: not a built-in name (see "
        "ASTClassifier.presets), not a hub id (owner/repo or "
        "hf://owner/repo), and no directory of that name exists."
    )


def load_preset(preset):
    """Opens a preset of either format (see the module doc).

    Args:
        preset: a built-in name (`keras_ast.presets.builtin.BUILTIN_PRESETS`),
            `hf://owner/repo`, `owner/repo`, or a local directory.

    Returns:
        A `PresetLoader`.

    Examples:
    >>> loader = load_preset("MIT/ast-finetuned-speech-commands-v2")
    >>> loader.head_config()["num_classes"]
    35
    """
    path = resolve(preset)
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{path!r} is not a preset: it has no {CONFIG_FILE}."
        )
    config = read_json(config_path)
    if config.get("format") == FORMAT_NAME:
        return KerasPresetLoader(path, config)
    if "model_type" in config:
        return TransformersPresetLoader(path, config)
    raise ValueError(
        f"{config_path} is neither a keras_ast preset nor a transformers AST "
        "config."
    )


def is_preset(path):
    """Whether `path` is a keras_ast preset directory."""
    config_path = os.path.join(path, CONFIG_FILE)
    try:
        return read_json(config_path).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def save_preset(preset_dir, backbone, classifier=None, metadata=None,
                pooling=None):
    """Writes a backbone (and classifier) as a keras_ast preset directory.

    The directory appears whole or not at all; an existing preset is
    replaced, any other non-empty directory is refused. A quantized
    backbone or head is recorded as such (the module doc: the backbone's
    from its config, the head's from `quantization_of`), and refused where
    `quantization_of` refuses it. A classifier's head is stored with its
    `pooling`.

    Args:
        preset_dir: the folder to write.
        backbone: the `ASTBackbone`.
        classifier: None, or the `ASTClassifier` holding `backbone`.
        metadata: a dict added to `metadata.json`.
        pooling: None, or the pooling (`POOLINGS`) that a new head put on
            this backbone takes by default (`ASTClassifier.from_preset`
            with `num_classes`): `"mean"` for a self-supervised backbone.

    Raises:
        ValueError: an unknown `pooling`, or a quantization that
            `quantization_of` refuses.
        FileExistsError: `preset_dir` is a non-empty folder that is not a
            keras_ast preset.

    Examples:
        ```python
        save_preset("runs/pretrain/preset", backbone=backbone,
                    pooling="mean")
        ```
    """
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(
            f"pooling must be None or one of {', '.join(map(repr, POOLINGS))}"
            f"; got {pooling!r}.")
    path = os.fspath(preset_dir)
    if os.path.isdir(path) and os.listdir(path) and not is_preset(path):
        raise FileExistsError(
            f"{path} exists and is not a keras_ast preset; refusing to "
            "overwrite it."
        )
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
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
        if classifier.pooling != "cls":  # "cls" stays readable by all
            config["classifier"]["pooling"] = classifier.pooling
    if pooling is not None:
        config["default_pooling"] = pooling
    quantization = {
        "backbone": config["backbone"].pop("quantization", None)}
    if classifier is not None:
        quantization["head"] = quantization_of(classifier,
                                               skip=[backbone])
    quantization = {part: way for part, way in quantization.items() if way}
    if quantization:
        config["quantization"] = quantization
        config["format_version"] = QUANTIZED_FORMAT_VERSION
    if "pooling" in config.get("classifier", {}):
        config["format_version"] = POOLING_FORMAT_VERSION
    info = {
        "keras_ast_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.config.backend(),
        "parameter_count": int((classifier or backbone).count_params()),
    }
    info.update(metadata or {})
    with atomic_directory(path) as staging:
        write_json(os.path.join(staging, CONFIG_FILE), config)
        backbone.save_weights(os.path.join(staging, MODEL_WEIGHTS_FILE))
        if classifier is not None:
            keras.saving.save_weights(
                classifier, os.path.join(staging, TASK_WEIGHTS_FILE),
                objects_to_skip=_not_task_weights(classifier),
            )
            if classifier.preprocessor is not None:
                write_json(os.path.join(staging, CONVERTER_FILE),
                           classifier.preprocessor.get_config())
            if classifier.labels is not None:
                write_json(os.path.join(staging, LABELS_FILE),
                           classifier.labels)
        write_json(os.path.join(staging, METADATA_FILE), info)


def save_converter_config(converter, preset_dir):
    """Adds (or replaces) the converter config of a preset directory."""
    write_json(os.path.join(preset_dir, CONVERTER_FILE),
               converter.get_config())
