"""`keras-ast train`: fine-tune a preset on shards, resumably."""

import contextlib
import logging
import sys

from keras_ast.cli.common import report_error


def add_arguments(parser):
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
            choices = field.metadata["choices"]
            metavar = None if choices else {int: "N", float: "X"}.get(
                kind, field.name.upper())
            parser.add_argument(flag, type=kind, metavar=metavar,
                                choices=choices, help=help_text + default)


@contextlib.contextmanager
def _show_messages(name):
    """Prints logger `name`'s messages (INFO and up) to stdout meanwhile."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("keras-ast train: %(message)s"))
    log = logging.getLogger(name)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _use_gloo(settings):
    """CPU collectives through gloo, for training in several processes.

    A process-wide JAX setting: the command line (this process is the
    run) sets it; the library leaves it to its caller. Only JAX trains in
    several processes; `train` reports any other backend.
    """
    if settings.get("num_processes", 1) <= 1:
        return
    import keras

    if keras.config.backend() == "jax":
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def run(args):
    from keras_ast.training.config import fields

    settings = {field.name: getattr(args, field.name) for field in fields()
                if getattr(args, field.name) is not None}
    from keras_ast.training.train import RunFinishedError
    from keras_ast.training.train import train

    try:
        _use_gloo(settings)
        with _show_messages("keras_ast.training.train"):
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
        return report_error("train", error)
    print(f"keras-ast train: the final model is in {args.output}/preset")
    return 0
