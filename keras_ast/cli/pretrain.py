"""`keras-ast pretrain`: pretrain a backbone on unlabelled audio, resumably."""

import sys

from keras_ast.cli.common import add_config_flags
from keras_ast.cli.common import config_settings
from keras_ast.cli.common import report_error
from keras_ast.cli.common import show_messages
from keras_ast.cli.common import use_gloo


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
    from keras_ast.training.config import pretrain_fields
    from keras_ast.training.pretrain import pretrain
    from keras_ast.training.runs import RunFinishedError

    settings = config_settings(args, pretrain_fields())
    try:
        use_gloo(settings)
        with show_messages("keras_ast.training.pretrain", "pretrain"):
            pretrain(args.preset, args.data, args.output,
                     validation=args.validation, overwrite=args.overwrite,
                     **settings)
    except RunFinishedError:
        print(f"keras-ast pretrain: {args.output} holds a finished run "
              f"({args.output}/preset); nothing to do. Add --overwrite to "
              "pretrain again.")
        return 0
    except KeyboardInterrupt:
        print(f"\nkeras-ast pretrain: interrupted. Run the same command "
              f"again to resume from the last finished epoch ({args.output}"
              "/backup).", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as error:
        return report_error("pretrain", error)
    print(f"keras-ast pretrain: the pretrained backbone is in "
          f"{args.output}/preset; fine-tune it with keras-ast train "
          f"--preset {args.output}/preset")
    return 0
