"""`keras-ast upload`: a preset directory to the Hugging Face Hub."""

from keras_ast.cli.common import report_error


def add_arguments(parser):
    """Adds `keras-ast upload`'s arguments to an argparse parser."""
    parser.add_argument("uri", metavar="hf://owner/repo",
                        help="the Hugging Face Hub repository (created if "
                        "needed; log in with `hf auth login` or HF_TOKEN)")
    parser.add_argument("preset_dir", metavar="PRESET_DIR",
                        help="a keras_ast preset directory (written by "
                        "save_to_preset or keras-ast convert)")


def run(args):
    """Runs `keras-ast upload` on parsed arguments; returns the exit status.

    0: uploaded; 1: the target or the folder was refused, or the Hub
    answered with an error.
    """
    from keras_ast.presets.upload import upload_preset

    try:
        uri = upload_preset(args.uri, args.preset_dir)
    except (ValueError, OSError) as error:  # the Hub's: OSError
        return report_error("upload", error)
    print(f"{args.preset_dir} -> {uri}")
    return 0
