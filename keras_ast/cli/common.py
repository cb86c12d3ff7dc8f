"""What every command shares: the error line and argument types."""

import argparse
import sys


def report_error(command, problem):
    """Prints `keras-ast COMMAND: error: PROBLEM` to stderr; returns 1."""
    print(f"keras-ast {command}: error: {problem}", file=sys.stderr)
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


def add_audio_inputs(parser):
    """The `PATH...` and `--preset` arguments of the commands that run a
    preset on audio files (`classify`, `embed`)."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="audio files or folders of them")
    parser.add_argument("--preset", required=True,
                        help="a built-in name, owner/repo, hf://owner/repo "
                        "or a folder")
