"""`keras-ast convert`: an AST checkpoint to a keras_ast preset directory.

SOURCE is a hub repository id (`MIT/ast-finetuned-audioset-10-10-0.4593`),
`hf://owner/repo`, a local directory in the Hugging Face format, or one of
the authors' original `.pth` files (`module.v.*` names, fused qkv).

    keras-ast convert --source MIT/ast-finetuned-speech-commands-v2 \\
        --output ast_sc --verify

    keras-ast convert --source audioset_10_10_0.4593.pth \\
        --output ast_audioset --labels class_labels_indices.csv --verify \\
        --upload hf://me/ast-audioset-keras

For a `.pth` file the geometry comes from --frequency-stride, --time-stride
and --max-length, or else from the authors' file-name pattern
(`audioset_10_10_0.4593.pth`, `speechcommands_10_10_0.9812.pth`); the
label count from the head. Pickles are read with `weights_only=True`: a
file that would run code is refused. The output directory appears whole
or not at all. --verify compares the logits with `transformers` on real
speech and exits with status 1, writing nothing, above --tolerance;
--upload publishes the preset on the Hugging Face Hub (`upload_preset`).
Exit status 2: the source could not be read or does not fit.
"""

import argparse
import sys
import textwrap

# Only the standard library at module level: `keras-ast convert --help`
# must not load Keras, a backend, torch or transformers.


def add_arguments(parser):
    """Adds `keras-ast convert`'s options to an argparse parser."""
    # The module doc's examples and notes, kept as written (so the
    # description is wrapped here, as argparse would have).
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if parser.description:
        parser.description = textwrap.fill(parser.description, 79)
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("--source", required=True,
                        help="hub id, hf://owner/repo, HF folder or .pth")
    parser.add_argument("--output", required=True,
                        help="the preset directory to write")
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
    parser.add_argument("--verify", action="store_true",
                        help="compare the logits with transformers")
    parser.add_argument("--verify-audio", help="a 16 kHz file for --verify")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest logit difference --verify accepts "
                        "(default 1e-3)")
    parser.add_argument("--upload", metavar="hf://owner/repo",
                        help="publish the preset on the Hugging Face Hub")


def _summary(source, output, classifier):
    print(f"{source} -> {output}: {classifier.count_params():,} parameters, "
          f"{classifier.num_classes} classes")


def _verdict(difference, tolerance):
    verdict = "ok" if difference <= tolerance else "TOO LARGE"
    print(f"verify: largest logit difference against transformers "
          f"{difference:.2e} ({verdict}, tolerance {tolerance:g})")


def run(args):
    """Runs `keras-ast convert` on parsed arguments; returns the exit status.

    0: written (and uploaded); 1: verification failed (nothing written) or
    another error; 2: the source could not be read or does not fit.
    """
    from keras_ast.porting import convert

    try:
        result = convert.convert_checkpoint(
            args.source, args.output,
            frequency_stride=args.frequency_stride,
            time_stride=args.time_stride, max_length=args.max_length,
            mean=args.mean, std=args.std, num_heads=args.num_heads,
            labels=args.labels, multi_label=args.multi_label,
            verify=args.verify, verify_audio=args.verify_audio,
            tolerance=args.tolerance, upload=args.upload,
        )
    except convert.VerificationError as error:
        _summary(args.source, args.output, error.classifier)
        _verdict(error.difference, args.tolerance)
        print("nothing was written", file=sys.stderr)
        return 1
    except convert.SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (convert.ConversionError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _summary(args.source, args.output, result.classifier)
    if result.max_abs_logit_difference is not None:
        _verdict(result.max_abs_logit_difference, args.tolerance)
    if result.uploaded_to:
        print(f"uploaded to {result.uploaded_to}")
    return 0

