"""`keras-ast embed`: audio files in, embeddings in an `.npz` file out.

Argument parsing, printing and exit codes around
`keras_ast.inference.embed.embed` (`ASTClassifier.embed`): folders walked
for audio files (sorted), a few threads decoding ahead of the model. The
output, written atomically, holds `embeddings` (float32, one row per file
that decoded) and `paths` (those files, in the same order). A file that
does not decode is reported with its reason and skipped: the exit status
is then 1, after every other file was embedded; when none decodes,
nothing is written. Keras is imported only when the command runs.
"""

import sys


def add_arguments(parser):
    """The `keras-ast embed` flags."""
    from keras_ast.cli.common import add_audio_inputs
    from keras_ast.cli.common import positive_int

    add_audio_inputs(parser)
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="the .npz file to write: embeddings (float32, "
                        "files x hidden size) and paths")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        metavar="N", help="clips per model call (default 16)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar")


def run(args):
    """Runs `keras-ast embed`; returns the exit status."""
    from keras_ast.inference.files import list_audio

    files = list_audio(args.paths)
    if not files:
        print("keras-ast embed: error: no audio files in "
              f"{', '.join(args.paths)}.", file=sys.stderr)
        return 2
    import numpy as np

    from keras_ast.inference import embed as inference
    from keras_ast.models.classifier import ASTClassifier
    from keras_ast.utils.files import atomic_write

    from keras_ast.presets import io as preset_io

    # A backbone preset has no head: a stand-in one, never run, lets the
    # classifier's inference path take it.
    has_head = preset_io.load_preset(args.preset).head_config().get(
        "num_classes") is not None
    classifier = ASTClassifier.from_preset(
        args.preset, num_classes=None if has_head else 1)
    long = []
    embeddings, skipped = inference.embed(
        classifier, files, batch_size=args.batch_size, skip_errors=True,
        progress=not args.no_progress, long_inputs=long)
    failed = {path for path, _ in skipped}
    found = [path for path in files if path not in failed]
    for path, reason in skipped:
        print(f"keras-ast embed: skipped {path}: {reason}", file=sys.stderr)
    if skipped:
        print(f"keras-ast embed: {len(skipped)} of {len(files)} files did "
              "not decode and were skipped.", file=sys.stderr)
    if not found:
        print(f"keras-ast embed: error: no file decoded; {args.output} "
              "was not written.", file=sys.stderr)
        return 1
    with atomic_write(args.output, "wb") as f:
        np.savez(f, embeddings=embeddings, paths=np.array(found, dtype=str))
    if long:
        limit = (classifier.preprocessor.num_samples
                 / classifier.preprocessor.sampling_rate)
        print(f"keras-ast embed: {len(long)} file"
              f"{'s are' if len(long) > 1 else ' is'} longer than the "
              f"model's input ({limit:.2f} s), the first {long[0][0]}: "
              f"only the first {limit:.2f} s were embedded.",
              file=sys.stderr)
    print(f"keras-ast embed: {len(found)} embeddings in {args.output}")
    return 1 if skipped else 0
