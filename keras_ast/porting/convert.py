"""An AST checkpoint converted into a keras_ast preset directory.

`convert_checkpoint` reads a hub repository id, `hf://owner/repo`, a local
directory in the Hugging Face format, or one of the authors' original
`.pth` files (`module.v.*` names, fused qkv), optionally verifies the
logits against `transformers` on speech, writes the preset atomically and
optionally publishes it (`keras_ast.upload_preset`). It raises
`SourceError`, `VerificationError` or `ConversionError`; the command
(`keras-ast convert`, `keras_ast.cli.convert`) turns them into exit
statuses.
"""

import csv
import dataclasses
import json
import os
import tempfile
import warnings

# Only the standard library at module level: Keras, torch and transformers
# load when a conversion runs.

HF_PREFIX = "hf://"
_GEOMETRY = ("frequency_stride", "time_stride", "max_length")
# The weights a source is read from, by preference: transformers', then a
# keras_ast preset's (backbone and head files).
_WEIGHT_FILES = (("model.safetensors",), ("pytorch_model.bin",),
                 ("model.weights.h5", "task.weights.h5"))


class ConversionError(ValueError):
    """A conversion that cannot go on (missing geometry, bad input)."""


class SourceError(ConversionError):
    """The source checkpoint could not be read, or does not fit a model."""


class VerificationError(ConversionError):
    """The converted logits differ from `transformers`' beyond tolerance.

    Nothing was written. `difference` is the largest |logit difference|,
    `classifier` the converted (unsaved) model.
    """

    def __init__(self, difference, tolerance, classifier, output):
        super().__init__(
            f"largest logit difference against transformers "
            f"{difference:.2e} exceeds the tolerance {tolerance:g}; "
            f"nothing was written to {output}"
        )
        self.difference = difference
        self.tolerance = tolerance
        self.classifier = classifier


@dataclasses.dataclass
class Conversion:
    """What `convert_checkpoint` did.

    Attributes:
        classifier: the converted `ASTClassifier`.
        output: the preset directory written.
        max_abs_logit_difference: the verification result, or None.
        uploaded_to: the `hf://owner/repo` published to, or None.
    """

    classifier: object
    output: str
    max_abs_logit_difference: float | None = None
    uploaded_to: str | None = None


def read_labels(path):
    """Labels from a text file (one a line) or the AudioSet CSV
    (`index,mid,display_name`)."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        if path.endswith(".csv"):
            rows = list(csv.reader(f))
            if rows and rows[0][:1] == ["index"]:
                rows = rows[1:]
            return [row[-1] for row in rows]
        return [line.strip() for line in f if line.strip()]


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def _pth_to_transformers(source, directory, geometry, num_heads, labels,
                         multi_label):
    """Writes a `.pth` checkpoint, mapped, as a transformers directory."""
    from safetensors.numpy import save_file

    from keras_ast.presets import original as convert_original

    guessed = convert_original.geometry_from_file_name(source) or {}
    geometry = {key: geometry[key] if geometry[key] is not None
                else guessed.get(key) for key in geometry}
    missing = [key for key in _GEOMETRY if geometry[key] is None]
    if missing:
        raise ConversionError(
            f"{source} does not follow the authors' file-name pattern "
            "(e.g. audioset_10_10_0.4593.pth); give its "
            + ", ".join(missing) + " ("
            + ", ".join("--" + key.replace("_", "-") for key in missing)
            + ")"
        )
    state = convert_original.to_transformers(convert_original.read_pth(source))
    config = convert_original.transformers_config(
        state, geometry["frequency_stride"], geometry["time_stride"],
        geometry["max_length"], num_heads=num_heads, labels=labels,
    )
    if multi_label is None:
        multi_label = guessed.get("multi_label")
    if multi_label is not None:
        config["problem_type"] = ("multi_label_classification" if multi_label
                                  else "single_label_classification")
    save_file(state, os.path.join(directory, "model.safetensors"))
    _write_json(os.path.join(directory, "config.json"), config)
    audioset = convert_original.DATASETS["audioset"]
    _write_json(os.path.join(directory, "preprocessor_config.json"), {
        "feature_extractor_type": "ASTFeatureExtractor",
        "sampling_rate": 16000,
        "num_mel_bins": 128,
        "max_length": geometry["max_length"],
        "mean": geometry["mean"] if geometry["mean"] is not None
        else audioset["mean"],
        "std": geometry["std"] if geometry["std"] is not None
        else audioset["std"],
        "do_normalize": True,
    })
    return [source]


def _hub_format_directory(source):
    """The local directory of a hub id or folder, and its weight files."""
    from keras_ast.presets import io as preset_io

    if not os.path.isdir(source) and not source.startswith(HF_PREFIX):
        source = HF_PREFIX + source  # a bare hub repository id
    directory = preset_io.resolve(source)
    for names in _WEIGHT_FILES:
        found = [os.path.join(directory, name) for name in names
                 if os.path.exists(os.path.join(directory, name))]
        if found:
            return directory, found
    return directory, []


def _verification_audio(verify_audio, max_length):
    import numpy as np

    if verify_audio:
        import soundfile

        audio, rate = soundfile.read(verify_audio, dtype="float32",
                                     always_2d=True)
        if rate != 16000:
            raise ConversionError(f"{verify_audio} is {rate} Hz, not 16000.")
        return [audio.mean(axis=1)]
    from keras_ast.datasets.spoken_keywords import speak

    speech = speak(
        "Audio spectrogram transformers listen to speech, music and noise.")
    seconds = max_length / 100
    full = np.tile(speech, int(np.ceil(seconds * 16000 / len(speech))))
    # The full input window, and a clip shorter than it.
    window = int(seconds * 16000)
    return [full[:window], speech[: min(len(speech), window) // 2]]


def _max_logit_difference(directory, classifier, verify_audio):
    """Largest |logit difference| against transformers on real audio."""
    import numpy as np
    import torch
    from transformers import ASTFeatureExtractor
    from transformers import ASTForAudioClassification

    if classifier.preprocessor is None:
        raise ConversionError("verification needs a preset with a converter.")
    reference = ASTForAudioClassification.from_pretrained(directory).eval()
    clips = _verification_audio(verify_audio,
                                classifier.preprocessor.max_length)
    with warnings.catch_warnings():
        # transformers' numpy mel filters warn that one of AST's 128 is
        # empty; the reference's features for AST are what they are, and
        # the command's user cannot act on the warning.
        warnings.filterwarnings("ignore", message="At least one mel filter")
        extractor = ASTFeatureExtractor(
            max_length=classifier.preprocessor.max_length,
            mean=classifier.preprocessor.mean,
            std=classifier.preprocessor.std,
        )
        inputs = extractor(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**inputs).logits.numpy()
    got = classifier.predict(clips, verbose=0)
    return float(np.abs(got - expected).max())


def versions():
    """Versions of keras_ast, Keras, the backend and the reference tools."""
    import keras

    from keras_ast.version import __version__

    found = {"keras_ast": __version__, "keras": keras.__version__,
             "backend": keras.config.backend()}
    for name in ("torch", "transformers", "huggingface_hub"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found


def convert_checkpoint(source, output, *, frequency_stride=None,
                       time_stride=None, max_length=None, mean=None,
                       std=None, num_heads=None, labels=None,
                       multi_label=None, verify=False, verify_audio=None,
                       tolerance=1e-3, upload=None):
    """Converts an AST checkpoint into a keras_ast preset directory.

    `output` is written as `save_to_preset` writes it, plus a
    `metadata.json` with the source, the sha256 of its weights, the
    versions used and the parameter count; atomically: whole or not at all.

    Args:
        source: a hub repository id, `hf://owner/repo`, a local directory in
            the Hugging Face format, or an original `.pth` file.
        output: the preset directory to write.
        frequency_stride: the patch stride along frequency of a `.pth`
            checkpoint (None: from the authors' file-name pattern).
        time_stride: the patch stride along time of a `.pth` checkpoint
            (None: from the file name).
        max_length: the input frames of a `.pth` checkpoint (None: from
            the file name).
        mean: the feature mean of a `.pth` checkpoint (None: from the file
            name, else AudioSet's).
        std: the feature standard deviation of a `.pth` checkpoint (None:
            from the file name, else AudioSet's).
        num_heads: the attention heads of a `.pth` checkpoint (None: the
            width divided by 64).
        labels: `.pth` labels: a list, or a file (one a line, or the
            AudioSet `index,mid,display_name` CSV).
        multi_label: `.pth` head kind (default: from the file name).
        verify: compare the logits with `transformers` on speech (needs
            torch, transformers and espeak-ng unless `verify_audio`).
        verify_audio: a 16 kHz audio file to verify on instead.
        tolerance: the largest logit difference `verify` accepts.
        upload: `hf://owner/repo` (or `owner/repo`) to publish the preset
            to with `keras_ast.upload_preset`.

    Returns:
        A `keras_ast.porting.convert.Conversion`: the classifier, the
        verification result and the URI it was uploaded to.

    Raises:
        keras_ast.porting.convert.SourceError: the source could not be
            read or does not fit.
        keras_ast.porting.convert.VerificationError: the logits differ
            beyond `tolerance`; nothing was written.
        keras_ast.porting.convert.ConversionError: anything else that
            stops the conversion.

    Examples:
        ```python
        result = keras_ast.convert_checkpoint(
            "MIT/ast-finetuned-speech-commands-v2", "ast_sc", verify=True)
        result.classifier.num_classes
        # 35
        ```
    """
    from keras_ast.utils.files import sha256_file

    source = os.fspath(source)
    output = os.fspath(output)
    if upload is not None:
        from keras_ast.presets.upload import parse_uri

        if "://" not in upload:
            upload = HF_PREFIX + upload  # a bare hub repository id
        try:
            parse_uri(upload)  # refuse a bad target before the work
        except ValueError as error:
            raise ConversionError(str(error)) from None
    with tempfile.TemporaryDirectory() as scratch:
        from keras_ast.models.classifier import ASTClassifier

        try:
            if source.endswith(".pth"):
                geometry = {"frequency_stride": frequency_stride,
                            "time_stride": time_stride,
                            "max_length": max_length, "mean": mean,
                            "std": std}
                if labels is not None and not isinstance(labels,
                                                         (list, tuple)):
                    labels = read_labels(labels)
                weights = _pth_to_transformers(
                    source, scratch, geometry, num_heads,
                    list(labels) if labels else None, multi_label)
                directory = scratch
            else:
                directory, weights = _hub_format_directory(source)
            classifier = ASTClassifier.from_preset(directory)
        except ConversionError:
            raise
        except (ValueError, FileNotFoundError) as error:
            # Unreadable, refused (a pickle that runs code) or misfitting.
            raise SourceError(str(error)) from error
        if source.endswith(".pth") and not labels:
            classifier.labels = None  # only placeholders are known
        metadata = {
            "source": source,
            "source_sha256": {os.path.basename(p): sha256_file(p)
                              for p in weights},
            "versions": versions(),
        }
        difference = None
        if verify:
            difference = _max_logit_difference(directory, classifier,
                                               verify_audio)
            metadata["verified_max_abs_logit_difference"] = difference
            if difference > tolerance:
                raise VerificationError(difference, tolerance, classifier,
                                        output)
        from keras_ast.presets import io as preset_io

        preset_io.save_preset(output, classifier.backbone, classifier,
                              metadata=metadata)
    uploaded_to = None
    if upload is not None:
        from keras_ast.presets.upload import upload_preset

        uploaded_to = upload_preset(upload, output)
    return Conversion(classifier, output, difference, uploaded_to)

