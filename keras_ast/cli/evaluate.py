"""`keras-ast evaluate`: a preset scored on shards."""

from keras_ast.cli.common import report_error


def add_arguments(parser):
    parser.add_argument("--preset", required=True,
                        help="a built-in name, owner/repo, hf://owner/repo "
                        "or a folder")
    parser.add_argument("--data", required=True,
                        help="shards to evaluate on (the preset's labels)")
    parser.add_argument("--output", metavar="OUT",
                        help="write OUT/evaluation.json (and, single-label, "
                        "OUT/confusion_matrix.png)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="clips per model call (default 32)")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N",
                        help="Grain decoding processes for ArrayRecord "
                        "shards (default 0: in this process)")


def run(args):
    from keras_ast.training.evaluate import evaluate
    from keras_ast.training.evaluate import format_report

    try:
        report = evaluate(args.preset, args.data, output=args.output,
                          batch_size=args.batch_size,
                          num_workers=args.num_workers)
    except (FileNotFoundError, ValueError) as error:
        return report_error("evaluate", error)
    print(format_report(report))
    if args.output:
        print(f"keras-ast evaluate: wrote {args.output}/evaluation.json")
    return 0
