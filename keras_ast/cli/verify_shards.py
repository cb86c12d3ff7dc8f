"""`keras-ast verify-shards`: every shard checked against its sha256."""

import sys

from keras_ast.cli.common import report_error


def add_arguments(parser):
    parser.add_argument("directory", help="a shard directory (make-shards' "
                        "OUTPUT)")


def run(args):
    from keras_ast.data.info import read_info
    from keras_ast.data.info import remedy
    from keras_ast.data.info import verify_shards

    try:
        info = read_info(args.directory, check_files=False)
        bad = verify_shards(info)
    except (FileNotFoundError, ValueError) as error:
        return report_error("verify-shards", error)
    total = len(info.shards)
    for name, problem in sorted(bad.items()):
        print(f"BAD {name}: {problem}")
    if bad:
        print(f"{args.directory}: {len(bad)} of {total} shards are bad. "
              f"{remedy(info, verify=False)}",
              file=sys.stderr)
        return 1
    print(f"{args.directory}: all {total} shards match dataset.json "
          f"({info.num_examples} examples).")
    return 0
