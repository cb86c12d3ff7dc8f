"""`keras-ast train`: fine-tune a preset on shards, resumably."""

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
            metavar = {int: "N", float: "X"}.get(kind, field.name.upper())
            parser.add_argument(flag, type=kind, metavar=metavar,
                                help=help_text + default)


def run(args):
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
        return report_error("train", error)
    print(f"keras-ast train: the final model is in {args.output}/preset")
    return 0
