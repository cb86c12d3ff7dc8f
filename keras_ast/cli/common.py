"""What the commands share: the error line, argument types, recipe flags."""

import argparse
import contextlib
import logging
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


def add_config_flags(parser, fields):
    """One flag per field of a recipe's config (`TrainConfig`,
    `PretrainConfig`): `batch_size` -> `--batch-size`, a boolean on by
    default -> `--no-...`; same defaults and help texts. Unset flags stay
    None (`config_settings` leaves them out)."""
    for field in fields:
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
            kind = field.metadata["type"]
            choices = field.metadata["choices"]
            if field.default is None:
                default = ""
            elif kind is str:
                default = f" (default: {field.default})"
            else:
                default = f" (default: {field.default:g})"
            metavar = None if choices else {int: "N", float: "X"}.get(
                kind, field.name.upper())
            parser.add_argument(flag, type=kind, metavar=metavar,
                                choices=choices, help=help_text + default)


def config_settings(args, fields):
    """The config fields given on the command line, as keyword arguments."""
    return {field.name: getattr(args, field.name) for field in fields
            if getattr(args, field.name) is not None}


@contextlib.contextmanager
def show_messages(name, command):
    """Prints logger `name`'s messages (INFO and up) to stdout meanwhile,
    as `keras-ast COMMAND: message`."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        f"keras-ast {command}: %(message)s"))
    log = logging.getLogger(name)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def use_gloo(settings):
    """CPU collectives through gloo, for training in several processes.

    A process-wide JAX setting: the command line (this process is the
    run) sets it; the library leaves it to its caller. Only JAX trains in
    several processes; the recipes report any other backend.
    """
    if settings.get("num_processes", 1) <= 1:
        return
    import keras

    if keras.config.backend() == "jax":
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def run_recipe(command, recipe, args, fields, done):
    """Runs `train` or `pretrain` for `keras-ast COMMAND` and reports.

    Args:
        command: `"train"` or `"pretrain"`.
        recipe: the function, called as `recipe(args.preset, data,
            args.output, validation=..., overwrite=..., **settings)`.
        args: the parsed arguments (`data` or `train` the shards).
        fields: the recipe's config fields (the flags).
        done: the line printed when the run finishes.

    Returns:
        The exit status: 0 (done, or already finished), 1 (an error), 130
        (interrupted: rerunning resumes).
    """
    from keras_ast.training.runs import RunFinishedError

    settings = config_settings(args, fields)
    data = getattr(args, "data", None) or args.train
    try:
        use_gloo(settings)
        # The messages of `keras_ast.training.train` or `.pretrain`.
        with show_messages(f"keras_ast.training.{command}", command):
            recipe(args.preset, data, args.output,
                   validation=args.validation, overwrite=args.overwrite,
                   **settings)
    except RunFinishedError:
        print(f"keras-ast {command}: {args.output} holds a finished run "
              f"({args.output}/preset); nothing to do. Add --overwrite to "
              f"{command} again.")
        return 0
    except KeyboardInterrupt:
        print(f"\nkeras-ast {command}: interrupted. Run the same command "
              f"again to resume from the last finished epoch "
              f"({args.output}/backup).", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as error:
        return report_error(command, error)
    print(f"keras-ast {command}: {done}")
    return 0
