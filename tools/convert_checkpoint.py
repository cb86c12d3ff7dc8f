"""Converts an AST checkpoint into a keras_ast preset directory.

SOURCE is a hub repository id (`MIT/ast-finetuned-audioset-10-10-0.4593`),
`hf://owner/repo`, a local directory in the Hugging Face format, or one of
the authors' original `.pth` files (`module.v.*` names, fused qkv).

    python tools/convert_checkpoint.py \\
        --source MIT/ast-finetuned-speech-commands-v2 --output ast_sc --verify

    python tools/convert_checkpoint.py --source audioset_10_10_0.4593.pth \\
        --output ast_audioset --labels class_labels_indices.csv --verify

For a `.pth` file the geometry comes from --frequency-stride, --time-stride
and --max-length, or else from the authors' file-name pattern
(`audioset_10_10_0.4593.pth`, `speechcommands_10_10_0.9812.pth`); the
label count from the head. Pickles are read with `weights_only=True`: a
file that would run code is refused. The output directory appears whole
or not at all. --verify compares the logits with `transformers` on real
speech and exits with status 1 above --tolerance; --upload publishes the
preset with `huggingface_hub`.
"""

import argparse
import csv
import json
import os
import sys
import tempfile

import numpy as np

import keras_ast
from keras_ast import convert_original
from keras_ast import preset_io
from keras_ast.files import sha256_file

REPO_ID = "hf://"


def read_labels(path):
    """Labels from a text file (one a line) or the AudioSet CSV
    (`index,mid,display_name`)."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".csv"):
            rows = list(csv.reader(f))
            if rows and rows[0][:1] == ["index"]:
                rows = rows[1:]
            return [row[-1] for row in rows]
        return [line.strip() for line in f if line.strip()]


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def pth_to_transformers(args, directory):
    """Writes a `.pth` checkpoint, mapped, as a transformers directory."""
    from safetensors.numpy import save_file

    guessed = convert_original.geometry_from_file_name(args.source) or {}
    geometry = {
        key: getattr(args, key) if getattr(args, key) is not None
        else guessed.get(key)
        for key in ("frequency_stride", "time_stride", "max_length", "mean",
                    "std")
    }
    missing = [k for k in ("frequency_stride", "time_stride", "max_length")
               if geometry[k] is None]
    if missing:
        raise SystemExit(
            f"{args.source} does not follow the authors' file-name pattern "
            "(e.g. audioset_10_10_0.4593.pth); pass "
            + ", ".join("--" + k.replace("_", "-") for k in missing)
        )
    state = convert_original.to_transformers(
        convert_original.read_pth(args.source)
    )
    labels = read_labels(args.labels) if args.labels else None
    config = convert_original.transformers_config(
        state, geometry["frequency_stride"], geometry["time_stride"],
        geometry["max_length"], num_heads=args.num_heads, labels=labels,
    )
    multi_label = guessed.get("multi_label")
    if args.multi_label is not None:
        multi_label = args.multi_label
    if multi_label is not None:
        config["problem_type"] = ("multi_label_classification" if multi_label
                                  else "single_label_classification")
    save_file(state, os.path.join(directory, "model.safetensors"))
    write_json(os.path.join(directory, "config.json"), config)
    write_json(os.path.join(directory, "preprocessor_config.json"), {
        "feature_extractor_type": "ASTFeatureExtractor",
        "sampling_rate": 16000,
        "num_mel_bins": 128,
        "max_length": geometry["max_length"],
        "mean": geometry["mean"] if geometry["mean"] is not None
        else convert_original.DATASETS["audioset"]["mean"],
        "std": geometry["std"] if geometry["std"] is not None
        else convert_original.DATASETS["audioset"]["std"],
        "do_normalize": True,
    })
    return [args.source]


def source_directory(args, scratch):
    """A transformers-format directory for SOURCE, and its weight files."""
    source = args.source
    if source.endswith(".pth"):
        return scratch, pth_to_transformers(args, scratch)
    if not os.path.isdir(source) and not source.startswith(REPO_ID):
        source = REPO_ID + source  # a bare hub repository id
    directory = preset_io.resolve(source)
    weights = [os.path.join(directory, name)
               for name in ("model.safetensors", "pytorch_model.bin",
                            preset_io.WEIGHTS_FILE)
               if os.path.exists(os.path.join(directory, name))]
    return directory, weights[:1]


def verification_audio(args, max_length):
    if args.verify_audio:
        import soundfile

        audio, rate = soundfile.read(args.verify_audio, dtype="float32",
                                     always_2d=True)
        if rate != 16000:
            raise SystemExit(f"{args.verify_audio} is {rate} Hz, not 16000.")
        return [audio.mean(axis=1)]
    from keras_ast import speech_synthesis

    speech = speech_synthesis.speak(
        "Audio spectrogram transformers listen to speech, music and noise.")
    seconds = max_length / 100
    full = np.tile(speech, int(np.ceil(seconds * 16000 / len(speech))))
    # The full input window, and a clip shorter than it.
    return [full[: int(seconds * 16000)], speech[: len(speech) // 2]]


def verify(args, directory, classifier):
    """Largest |logit difference| against transformers on real audio."""
    import torch
    from transformers import ASTFeatureExtractor
    from transformers import ASTForAudioClassification

    if classifier.preprocessor is None:
        raise SystemExit("--verify needs a preset with a converter.")
    reference = ASTForAudioClassification.from_pretrained(directory).eval()
    extractor = ASTFeatureExtractor(
        max_length=classifier.preprocessor.max_length,
        mean=classifier.preprocessor.mean, std=classifier.preprocessor.std,
    )
    clips = verification_audio(args, classifier.preprocessor.max_length)
    inputs = extractor(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**inputs).logits.numpy()
    got = classifier.predict(clips, verbose=0)
    return float(np.abs(got - expected).max())


def upload(output, target):
    import huggingface_hub

    repo_id = target[len(REPO_ID):] if target.startswith(REPO_ID) else target
    api = huggingface_hub.HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=output, repo_id=repo_id,
                      commit_message="Upload keras_ast preset")
    return repo_id


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--source", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--frequency-stride", type=int)
    parser.add_argument("--time-stride", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--mean", type=float,
                        help="feature mean (.pth; else from the file name)")
    parser.add_argument("--std", type=float,
                        help="feature std (.pth; else from the file name)")
    parser.add_argument("--num-heads", type=int,
                        help="attention heads (.pth; default width / 64)")
    parser.add_argument("--labels", help="labels file: .txt or AudioSet .csv")
    label_kind = parser.add_mutually_exclusive_group()
    label_kind.add_argument("--multi-label", dest="multi_label",
                            action="store_true", default=None)
    label_kind.add_argument("--single-label", dest="multi_label",
                            action="store_false")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--verify-audio", help="a 16 kHz file for --verify")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--upload", metavar="hf://owner/repo")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            directory, weights = source_directory(args, scratch)
            classifier = keras_ast.ASTClassifier.from_preset(directory)
            if args.source.endswith(".pth") and not args.labels:
                classifier.labels = None  # only placeholders are known
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        metadata = {
            "source": args.source,
            "source_sha256": {os.path.basename(p): sha256_file(p)
                              for p in weights},
            "versions": versions(),
        }
        difference = None
        if args.verify:
            difference = verify(args, directory, classifier)
            metadata["verified_max_abs_logit_difference"] = difference
        if difference is None or difference <= args.tolerance:
            preset_io.save_preset(args.output, classifier.backbone,
                                  classifier, metadata=metadata)
    print(f"{args.source} -> {args.output}: "
          f"{classifier.count_params():,} parameters, "
          f"{classifier.num_classes} classes")
    if difference is not None:
        verdict = "ok" if difference <= args.tolerance else "TOO LARGE"
        print(f"verify: largest logit difference against transformers "
              f"{difference:.2e} ({verdict}, tolerance {args.tolerance:g})")
        if difference > args.tolerance:
            print("nothing was written", file=sys.stderr)
            return 1
    if args.upload:
        print(f"uploaded to hf://{upload(args.output, args.upload)}")
    return 0


def versions():
    import keras

    found = {"keras_ast": keras_ast.__version__, "keras": keras.__version__,
             "backend": keras.config.backend()}
    for name in ("torch", "transformers", "huggingface_hub"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found


if __name__ == "__main__":
    sys.exit(main())
