"""`keras-ast train`: fine-tune a preset on shards, resumably."""

import sys

from keras_ast.cli.common import add_config_flags
from keras_ast.cli.common import config_settings
from keras_ast.cli.common import report_error
from keras_ast.cli.common import show_messages
from keras_ast.cli.common import use_gloo


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
    from keras_ast.training.config import fields

    add_config_flags(parser, fields())


def run(args):
    from keras_ast.training.config import fields
    from keras_ast.training.runs import RunFinishedError
    from keras_ast.training.train import train

    settings = config_settings(args, fields())
    try:
        use_gloo(settings)
        with show_messages("keras_ast.training.train", "train"):
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
