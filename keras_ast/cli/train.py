"""`keras-ast train`: fine-tune a preset on shards, resumably."""

from keras_ast.cli.common import add_config_flags
from keras_ast.cli.common import run_recipe


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
    from keras_ast.training import train as training
    from keras_ast.training.config import fields

    # Looked up at run time: tests stand a wrapper in for it.
    return run_recipe("train", training.train, args, fields(),
                      f"the final model is in {args.output}/preset")
