"""`keras-ast export`: a preset to a SavedModel, ONNX or LiteRT."""

from keras_ast.cli.common import positive_int
from keras_ast.cli.common import report_error


def add_arguments(parser):
    """Adds `keras-ast export`'s arguments to an argparse parser."""
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


def run(args):
    """Runs `keras-ast export` on parsed arguments; returns the exit status.

    0: written; 1: the preset could not be loaded or exported in that
    format (on this backend).
    """
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
        return report_error("export", error)
    print(f"keras-ast export: wrote {written or args.output}")
    return 0
