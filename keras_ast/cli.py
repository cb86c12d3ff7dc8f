"""The `keras-ast` command line.

Each subcommand is an entry of `SUBCOMMANDS`: name -> `(help,
add_arguments(parser), run(args) -> exit status)`. Adding one is adding an
entry; `main` builds the argparse subparsers from the table.

    keras-ast make-shards SOURCE OUTPUT --format arrayrecord
    keras-ast train --preset ast_speech_commands_v2 --train shards/train \
        --validation shards/val --output runs/sc
    keras-ast classify recordings/ --preset ast_audioset_10_10_0.4593
"""

import argparse
import importlib
import sys


def _error(command, error):
    print(f"keras-ast {command}: error: {error}", file=sys.stderr)
    return 1


# --- make-shards ----------------------------------------------------------


def add_make_shards_arguments(parser):
    parser.add_argument(
        "source",
        help="a folder with one sub-folder per class, a CSV manifest "
        "(path,label[s]) or a JSON-lines manifest",
    )
    parser.add_argument("output", help="the shard directory to write")
    parser.add_argument(
        "--format", default="tfrecord", choices=["tfrecord", "arrayrecord"],
        help="tfrecord (tf.data) or arrayrecord (Grain); default tfrecord",
    )
    parser.add_argument(
        "--shard-size-mb", type=float, default=64.0, metavar="N",
        help="target shard size in megabytes of audio (default 64)",
    )
    parser.add_argument(
        "--num-workers", type=int, default=None, metavar="N",
        help="decoding processes (default: the number of CPUs; 0 or 1: "
        "decode in the main process)",
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the shuffled write order (default 0)",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="reuse a finished OUTPUT made from the same files, or delete "
        "the shards of an unfinished run and start over",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar",
    )


def run_make_shards(args):
    from keras_ast.data.shards import make_shards

    try:
        info = make_shards(
            args.source, args.output, format=args.format,
            shard_size_mb=args.shard_size_mb, num_workers=args.num_workers,
            progress=not args.no_progress, resume=args.resume,
            seed=args.seed,
        )
    except (FileExistsError, FileNotFoundError, ValueError,
            ImportError) as error:
        # make_shards' messages name its argument; here it is a flag.
        message = str(error).replace("resume=True", "--resume")
        return _error("make-shards", message)
    except KeyboardInterrupt:
        print(f"\nkeras-ast make-shards: interrupted; {args.output} is "
              "unfinished: run again with --resume to start over.",
              file=sys.stderr)
        return 130
    skipped = info["skipped"]
    print(
        f"{args.output}: {info['num_examples']} examples, "
        f"{len(info['labels'])} labels"
        f"{' (multi-label)' if info['multi_label'] else ''}, "
        f"{len(info['shards'])} {info['record_format']} shards, "
        f"{len(skipped)} skipped."
    )
    for item in skipped[:10]:
        print(f"  skipped {item['path']}: {item['reason']}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more (see dataset.json)")
    return 0


# --- train ----------------------------------------------------------------


def add_train_arguments(parser):
    parser.add_argument("--preset", required=True,
                        help="a built-in name, owner/repo, hf://owner/repo "
                        "or a folder")
    parser.add_argument("--train", required=True, help="training shards")
    parser.add_argument("--validation", help="validation shards")
    parser.add_argument("--output", required=True,
                        help="checkpoints, metrics.json and the final preset")
    parser.add_argument("--overwrite", action="store_true",
                        help="train again over a finished run in OUTPUT")
    # One flag per TrainConfig field: same names, defaults and help.
    from keras_ast.train_config import fields

    for field in fields():
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata["help"]
        if field.metadata["type"] is None and field.default is True:
            parser.add_argument("--no-" + flag[2:], dest=field.name,
                                action="store_false", default=None,
                                help=f"no {help_text}")
        elif field.metadata["type"] is None:
            parser.add_argument(flag, action="store_true", default=None,
                                help=help_text)
        else:
            default = ("" if field.default is None
                       else f" (default: {field.default:g})")
            kind = field.metadata["type"]
            parser.add_argument(flag, type=kind,
                                metavar="N" if kind is int else "X",
                                help=help_text + default)


def run_train(args):
    from keras_ast.train_config import fields

    settings = {field.name: getattr(args, field.name) for field in fields()
                if getattr(args, field.name) is not None}
    from keras_ast.training import RunFinishedError
    from keras_ast.training import train

    try:
        train(args.preset, args.train, args.output,
              validation=args.validation, overwrite=args.overwrite,
              **settings)
    except RunFinishedError:
        print(f"keras-ast train: {args.output} holds a finished run "
              f"({args.output}/preset); nothing to do. Add --overwrite to "
              "train again.")
        return 0
    except KeyboardInterrupt:
        print(f"\nkeras-ast train: interrupted. Run the same command again "
              f"to resume from the last finished epoch ({args.output}/"
              "backup).", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as error:
        return _error("train", error)
    print(f"keras-ast train: the final model is in {args.output}/preset")
    return 0


# --- export -----------------------------------------------------------------


def add_export_arguments(parser):
    parser.add_argument("output", help="the folder (SavedModel) or file "
                        "(.onnx, .tflite) to write")
    parser.add_argument("--preset", required=True,
                        help="a built-in name, owner/repo, hf://owner/repo "
                        "or a folder")
    parser.add_argument("--format", default="tf_saved_model",
                        choices=["tf_saved_model", "onnx", "litert"],
                        help="default: tf_saved_model (TF Serving)")
    parser.add_argument("--serving-version", type=int, metavar="N",
                        help="SavedModel in TF Serving's layout, OUTPUT/N/")
    parser.add_argument("--top-k", type=int, default=5, metavar="N",
                        help="labels of the SavedModel's classify signature")
    parser.add_argument("--quantization", choices=["float16", "dynamic_int8"],
                        help="LiteRT weights (default: float32)")


def run_export(args):
    from keras_ast.classifier import ASTClassifier

    options = {}
    if args.format == "tf_saved_model":
        options = {"serving_version": args.serving_version,
                   "top_k": args.top_k}
    elif args.format == "litert" and args.quantization:
        options = {"quantization": args.quantization}
    try:
        classifier = ASTClassifier.from_preset(args.preset)
        written = classifier.export(args.output, format=args.format,
                                    **options)
    except (FileNotFoundError, ValueError, NotImplementedError) as error:
        return _error("export", error)
    print(f"keras-ast export: wrote {written or args.output}")
    return 0


# --- commands in their own modules -----------------------------------------


def _from_module(name):
    """`(add_arguments, run)` of a command module, imported when used.

    The modules import only the standard library at the top, so `--help`
    loads no Keras.
    """

    def add_arguments(parser):
        importlib.import_module(name).add_arguments(parser)

    def run(args):
        return importlib.import_module(name).run(args)

    return add_arguments, run


# --- dispatch -------------------------------------------------------------

SUBCOMMANDS = {
    "make-shards": (
        "Decode a labelled audio collection into TFRecord or ArrayRecord "
        "shards (mono float32, 16 kHz) with a dataset.json index.",
        add_make_shards_arguments,
        run_make_shards,
    ),
    "train": (
        "Fine-tune a preset on shards (AdamW, warm-up then cosine decay, "
        "SpecAugment and mixup), resuming an interrupted run.",
        add_train_arguments,
        run_train,
    ),
    "convert": (
        "Convert an AST checkpoint (hub id, hf://owner/repo, Hugging Face "
        "folder or the authors' .pth) into a keras_ast preset, optionally "
        "verified against transformers and uploaded.",
        *_from_module("keras_ast.convert_checkpoint"),
    ),
    "upload": (
        "Upload a keras_ast preset directory to the Hugging Face Hub "
        "(hf://owner/repo, created if needed).",
        *_from_module("keras_ast.upload"),
    ),
    "export": (
        "Export a preset with the spectrogram inside: a SavedModel for TF "
        "Serving, ONNX or LiteRT (raw waveforms in, logits and scores out).",
        add_export_arguments,
        run_export,
    ),
    "classify": (
        "Classify audio files (top-k labels), or tag long recordings "
        "(--timeline: events with onsets and offsets), with any preset.",
        *_from_module("keras_ast.classify_files"),
    ),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-ast",
        description="Audio Spectrogram Transformer tools for Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(
            name, help=help_text, description=help_text
        )
        add_arguments(subparser)
        subparser.set_defaults(_run=run)
    return parser


def main(argv=None):
    """The `keras-ast` entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
