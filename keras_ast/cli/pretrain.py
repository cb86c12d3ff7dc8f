"""`keras-ast pretrain`: pretrain a backbone on unlabelled audio, resumably."""

from keras_ast.cli.common import add_config_flags
from keras_ast.cli.common import run_recipe


def add_arguments(parser):
    parser.add_argument("--preset", required=True,
                        help="the backbone to start from: a built-in name, "
                        "owner/repo, hf://owner/repo or a folder (e.g. "
                        "random weights saved with save_to_preset)")
    parser.add_argument("--data", "--train", dest="data", required=True,
                        help="training shards, unlabelled or not (labels "
                        "are ignored)")
    parser.add_argument("--validation", help="validation shards: the "
                        "reconstruction loss on audio not trained on")
    parser.add_argument("--output", required=True,
                        help="checkpoints, metrics.json and the backbone "
                        "presets (OUTPUT/preset, OUTPUT/best_preset)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh: remove what an earlier run, "
                        "finished or interrupted, wrote into OUTPUT")
    from keras_ast.training.config import pretrain_fields

    add_config_flags(parser, pretrain_fields())


def run(args):
    from keras_ast.training import pretrain as pretraining
    from keras_ast.training.config import pretrain_fields

    return run_recipe(
        "pretrain", pretraining.pretrain, args, pretrain_fields(),
        f"the pretrained backbone is in {args.output}/preset; fine-tune it "
        f"with keras-ast train --preset {args.output}/preset")
