"""The `keras-ast` command line.

Each subcommand is an entry of `SUBCOMMANDS`: name -> `(help,
add_arguments(parser), run(args) -> exit status)`. Adding one is adding an
entry; `main` builds the argparse subparsers from the table.

    keras-ast make-shards SOURCE OUTPUT --format arrayrecord
    keras-ast train --preset ast_speech_commands_v2 --train shards/train \
        --validation shards/val --output runs/sc
    keras-ast evaluate --preset runs/sc/preset --data shards/test
    keras-ast classify recordings/ --preset ast_audioset_10_10_0.4593
    keras-ast embed recordings/ --preset P --output embeddings.npz
"""

import argparse
import importlib
import os
import sys


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
        "Decode an audio collection (labelled or not) into TFRecord or "
        "ArrayRecord shards (mono float32, 16 kHz) with a dataset.json "
        "index; exit "
        "status 1 if a file was skipped (listed, and in dataset.json).",
        *_from_module("keras_ast.cli.make_shards"),
    ),
    "verify-shards": (
        "Check every shard of a shard directory against the sha256 in its "
        "dataset.json; list the bad ones (exit status 1 if any).",
        *_from_module("keras_ast.cli.verify_shards"),
    ),
    "train": (
        "Fine-tune a preset on shards (AdamW, warm-up then cosine decay, "
        "SpecAugment and mixup), resuming an interrupted run.",
        *_from_module("keras_ast.cli.train"),
    ),
    "pretrain": (
        "Pretrain a backbone on unlabelled audio shards by masked "
        "spectrogram patch modelling (as SSAST and Audio-MAE), resuming an "
        "interrupted run; the result is a backbone preset for train.",
        *_from_module("keras_ast.cli.pretrain"),
    ),
    "convert": (
        "Convert an AST checkpoint (hub id, hf://owner/repo, Hugging Face "
        "folder or the authors' .pth) into a keras_ast preset, optionally "
        "verified against transformers and uploaded.",
        *_from_module("keras_ast.cli.convert"),
    ),
    "upload": (
        "Upload a keras_ast preset directory to the Hugging Face Hub "
        "(hf://owner/repo, created if needed).",
        *_from_module("keras_ast.cli.upload"),
    ),
    "export": (
        "Export a preset with the spectrogram inside: a SavedModel for TF "
        "Serving, ONNX or LiteRT (raw waveforms in, logits and scores out).",
        *_from_module("keras_ast.cli.export"),
    ),
    "evaluate": (
        "Evaluate a preset on shards: accuracy, F1 and a confusion matrix "
        "(single-label), or mAP and d-prime (multi-label).",
        *_from_module("keras_ast.cli.evaluate"),
    ),
    "classify": (
        "Classify audio files (top-k labels), or tag long recordings "
        "(--timeline: events with onsets and offsets), with any preset.",
        *_from_module("keras_ast.cli.classify"),
    ),
    "embed": (
        "Embed audio files (the backbone's pooled output, before the "
        "head) into an .npz file of embeddings and paths; exit status 1 "
        "if a file was skipped.",
        *_from_module("keras_ast.cli.embed"),
    ),
    "presets": (
        "List the built-in presets: hub repository, input, labels and "
        "reported score.",
        *_from_module("keras_ast.cli.presets"),
    ),
}

EXIT_STATUS = (
    "exit status: 0 done; 1 an error, or some input files were skipped "
    "(make-shards, classify, embed: the others are done and the skipped "
    "ones listed with their reason; verify-shards: bad shards); 2 a usage "
    "error."
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
