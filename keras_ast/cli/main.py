"""The `keras-ast` command line.

Each subcommand is an entry of `SUBCOMMANDS`: name -> `(help,
add_arguments(parser), run(args) -> exit status)`. Adding one is adding an
entry; `main` builds the argparse subparsers from the table.

    keras-ast make-shards SOURCE OUTPUT --format arrayrecord
    keras-ast train --preset ast_speech_commands_v2 --train shards/train \
        --validation shards/val --output runs/sc
    keras-ast evaluate --preset runs/sc/preset --data shards/test
    keras-ast classify recordings/ --preset ast_audioset_10_10_0.4593
"""

import argparse
import importlib
import os
import sys


def _error(command, error):
    print(f"keras-ast {command}: error: {error}", file=sys.stderr)
    return 1


def positive_int(text):
    """argparse `type=` for counts that must be at least 1 (--top-k)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    parser.add_argument(
        "--runner", default="local", choices=["local", "beam"],
        help="local: decode in a pool of processes here (default); beam: "
        "an Apache Beam pipeline (keras-ast[beam]) on the runner that "
        "--beam-options names",
    )
    parser.add_argument(
        "--beam-options", metavar="OPTIONS",
        help="Beam pipeline options as one string, written with '=': "
        "--beam-options=\"--runner=DataflowRunner --project=P ...\" "
        "(default --runner=DirectRunner)",
    )


def _make_shards_with_runner(args):
    """`make_shards`, or its Beam twin with --runner beam."""
    if args.runner == "local":
        if args.beam_options is not None:
            raise ValueError("--beam-options needs --runner beam.")
        from keras_ast.data.shards import make_shards

        return make_shards(
            args.source, args.output, format=args.format,
            shard_size_mb=args.shard_size_mb, num_workers=args.num_workers,
            progress=not args.no_progress, resume=args.resume,
            seed=args.seed,
        )
    if args.num_workers is not None:
        raise ValueError(
            "--num-workers sets the local runner's processes; with "
            "--runner beam, parallelism is a Beam option, e.g. "
            "--beam-options=\"--direct_num_workers=4 "
            "--direct_running_mode=multi_processing\"."
        )
    from keras_ast.data.beam_shards import make_shards_beam

    return make_shards_beam(
        args.source, args.output, format=args.format,
        shard_size_mb=args.shard_size_mb, beam_options=args.beam_options,
        resume=args.resume, seed=args.seed,
    )


def run_make_shards(args):
    try:
        info = _make_shards_with_runner(args)
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
    # As classify: the shards are written, and the status tells a script
    # that some files are not in them.
    return 1 if skipped else 0


# --- verify-shards ----------------------------------------------------------


def add_verify_shards_arguments(parser):
    parser.add_argument("directory", help="a shard directory (make-shards' "
                        "OUTPUT)")


def run_verify_shards(args):
    from keras_ast.data.info import read_info
    from keras_ast.data.info import remedy
    from keras_ast.data.info import verify_shards

    try:
        bad = verify_shards(args.directory)
        info = read_info(args.directory, check_files=False)
    except (FileNotFoundError, ValueError) as error:
        return _error("verify-shards", error)
    total = len(info["shards"])
    for name, problem in sorted(bad.items()):
        print(f"BAD {name}: {problem}")
    if bad:
        print(f"{args.directory}: {len(bad)} of {total} shards are bad. "
              f"{remedy(args.directory, info, verify=False)}",
              file=sys.stderr)
        return 1
    print(f"{args.directory}: all {total} shards match dataset.json "
          f"({info['num_examples']} examples).")
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
                        help="start afresh: remove what an earlier run, "
                        "finished or interrupted, wrote into OUTPUT")
    # One flag per TrainConfig field: same names, defaults and help.
    from keras_ast.training.config import fields

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
            metavar = {int: "N", float: "X"}.get(kind, field.name.upper())
            parser.add_argument(flag, type=kind, metavar=metavar,
                                help=help_text + default)


def run_train(args):
    from keras_ast.training.config import fields

    settings = {field.name: getattr(args, field.name) for field in fields()
                if getattr(args, field.name) is not None}
    from keras_ast.training.train import RunFinishedError
    from keras_ast.training.train import train

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


# --- evaluate ---------------------------------------------------------------


def add_evaluate_arguments(parser):
    parser.add_argument("--preset", required=True,
                        help="a built-in name, owner/repo, hf://owner/repo "
                        "or a folder")
    parser.add_argument("--data", required=True,
                        help="shards to evaluate on (the preset's labels)")
    parser.add_argument("--output", metavar="OUT",
                        help="write OUT/evaluation.json (and, single-label, "
                        "OUT/confusion_matrix.png)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="clips per model call (default 32)")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N",
                        help="Grain decoding processes for ArrayRecord "
                        "shards (default 0: in this process)")


def run_evaluate(args):
    from keras_ast.training.evaluate import evaluate
    from keras_ast.training.evaluate import format_report

    try:
        report = evaluate(args.preset, args.data, output=args.output,
                          batch_size=args.batch_size,
                          num_workers=args.num_workers)
    except (FileNotFoundError, ValueError) as error:
        return _error("evaluate", error)
    print(format_report(report))
    if args.output:
        print(f"keras-ast evaluate: wrote {args.output}/evaluation.json")
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
    parser.add_argument("--top-k", type=positive_int, default=5, metavar="N",
                        help="labels of the SavedModel's classify signature")
    parser.add_argument("--quantization", choices=["float16", "dynamic_int8"],
                        help="LiteRT weights (default: float32)")


def run_export(args):
    from keras_ast.models.classifier import ASTClassifier

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


# --- presets ----------------------------------------------------------------


def add_presets_arguments(parser):
    parser.add_argument("--format", choices=["table", "json"],
                        default="table",
                        help="output format (default: table)")


def _score_text(score):
    """`0.4593 mAP (AudioSet)`, `98.1% accuracy (Speech Commands V2)`."""
    value = score["value"]
    if score["metric"] == "accuracy":
        text = f"{value * 100:g}%"
    else:  # at least the three decimals the authors give: 0.450
        text = f"{value:.3f}" if round(value, 3) == value else f"{value:g}"
    return f"{text} {score['metric']} ({score['dataset']})"


def run_presets(args):
    # Standard library and numpy only: no Keras, no backend.
    from keras_ast.data.audio_io import SAMPLING_RATE
    from keras_ast.ops.kaldi import FRAME_SHIFT
    from keras_ast.presets.builtin import BUILTIN_PRESETS

    rows = [
        dict(name=name, **preset, sampling_rate=SAMPLING_RATE,
             input_seconds=preset["max_length"] * FRAME_SHIFT
             / SAMPLING_RATE)
        for name, preset in BUILTIN_PRESETS.items()
    ]
    if args.format == "json":
        import json

        print(json.dumps(rows, indent=2))
        return 0
    table = [("PRESET", "HUB REPOSITORY", "INPUT", "LABELS", "REPORTED")]
    table += [
        (row["name"], row["hf_repo"],
         f"{row['input_seconds']:g} s, {row['sampling_rate'] // 1000} kHz",
         str(row["num_classes"]), _score_text(row["score"]))
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for line in table:
        print("  ".join([cell.ljust(width) for cell, width
                         in zip(line, widths)] + [line[-1]]))
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
        "shards (mono float32, 16 kHz) with a dataset.json index; exit "
        "status 1 if a file was skipped (listed, and in dataset.json).",
        add_make_shards_arguments,
        run_make_shards,
    ),
    "verify-shards": (
        "Check every shard of a shard directory against the sha256 in its "
        "dataset.json; list the bad ones (exit status 1 if any).",
        add_verify_shards_arguments,
        run_verify_shards,
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
        *_from_module("keras_ast.porting.convert"),
    ),
    "upload": (
        "Upload a keras_ast preset directory to the Hugging Face Hub "
        "(hf://owner/repo, created if needed).",
        *_from_module("keras_ast.presets.upload"),
    ),
    "export": (
        "Export a preset with the spectrogram inside: a SavedModel for TF "
        "Serving, ONNX or LiteRT (raw waveforms in, logits and scores out).",
        add_export_arguments,
        run_export,
    ),
    "evaluate": (
        "Evaluate a preset on shards: accuracy, F1 and a confusion matrix "
        "(single-label), or mAP and d-prime (multi-label).",
        add_evaluate_arguments,
        run_evaluate,
    ),
    "classify": (
        "Classify audio files (top-k labels), or tag long recordings "
        "(--timeline: events with onsets and offsets), with any preset.",
        *_from_module("keras_ast.cli.classify"),
    ),
    "presets": (
        "List the built-in presets: hub repository, input, labels and "
        "reported score.",
        add_presets_arguments,
        run_presets,
    ),
}

EXIT_STATUS = (
    "exit status: 0 done; 1 an error, or some input files were skipped "
    "(make-shards, classify: the others are done and the skipped ones "
    "listed with their reason; verify-shards: bad shards); 2 a usage error."
)


def build_parser():
    from keras_ast.version import __version__

    parser = argparse.ArgumentParser(
        prog="keras-ast",
        description="Audio Spectrogram Transformer tools for Keras 3.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
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
    """The `keras-ast` entry point; returns the exit status.

    The command runs in `quiet_tensorflow()`: TensorFlow, where the command
    starts it, logs no C++ lines unless `TF_CPP_MIN_LOG_LEVEL` asks.
    """
    from keras_ast.utils.quiet_tensorflow import quiet_tensorflow

    with quiet_tensorflow():
        args = build_parser().parse_args(argv)
        try:
            status = args._run(args)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader left (`keras-ast presets | head`): no traceback.
            # Python's recipe: standard output to devnull, so that the
            # flush at exit does not fail again.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # not a file (a captured stdout)
                pass
            return 1
        return status


if __name__ == "__main__":
    sys.exit(main())
