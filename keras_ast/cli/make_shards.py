"""`keras-ast make-shards`: an audio collection, labelled or not, to shards."""

import sys

from keras_ast.cli.common import report_error


def add_arguments(parser):
    parser.add_argument(
        "source",
        help="a folder with one sub-folder per class, a folder of "
        "unlabelled audio files (at its top level), a CSV manifest "
        "(path[,label[s]]) or a JSON-lines manifest",
    )
    parser.add_argument("output", help="the shard directory to write")
    parser.add_argument(
        "--format", default="tfrecord", choices=["tfrecord", "arrayrecord"],
        help="tfrecord (tf.data) or arrayrecord (Grain); default tfrecord",
    )
    parser.add_argument(
        "--shard-size-mb", type=float, default=64.0, metavar="N",
        help="target shard size in megabytes of audio (default 64)",
    )
    parser.add_argument(
        "--num-workers", type=int, default=None, metavar="N",
        help="decoding processes (default: the number of CPUs; 0 or 1: "
        "decode in the main process)",
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the shuffled write order (default 0)",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="reuse a finished OUTPUT made from the same files, or delete "
        "the shards of an unfinished run and start over",
    )
    parser.add_argument(
        "--unlabelled", action="store_true",
        help="unlabelled shards of every audio file under SOURCE, at any "
        "depth (e.g. speaker/chapter/*.flac), or of every clip of a "
        "manifest, its labels ignored",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar",
    )
    parser.add_argument(
        "--runner", default="local", choices=["local", "beam"],
        help="local: decode in a pool of processes here (default); beam: "
        "an Apache Beam pipeline (keras-ast[beam]) on the runner that "
        "--beam-options names",
    )
    parser.add_argument(
        "--beam-options", metavar="OPTIONS",
        help="Beam pipeline options as one string, written with '=': "
        "--beam-options=\"--runner=DataflowRunner --project=P ...\" "
        "(default --runner=DirectRunner)",
    )


def _make_shards_with_runner(args):
    """`make_shards`, or its Beam twin with --runner beam."""
    if args.runner == "local":
        if args.beam_options is not None:
            raise ValueError("--beam-options needs --runner beam.")
        from keras_ast.data.shards import make_shards

        return make_shards(
            args.source, args.output, format=args.format,
            shard_size_mb=args.shard_size_mb, num_workers=args.num_workers,
            progress=not args.no_progress, resume=args.resume,
            seed=args.seed, unlabelled=args.unlabelled,
        )
    if args.num_workers is not None:
        raise ValueError(
            "--num-workers sets the local runner's processes; with "
            "--runner beam, parallelism is a Beam option, e.g. "
            "--beam-options=\"--direct_num_workers=4 "
            "--direct_running_mode=multi_processing\"."
        )
    from keras_ast.data.beam_shards import make_shards_beam

    return make_shards_beam(
        args.source, args.output, format=args.format,
        shard_size_mb=args.shard_size_mb, beam_options=args.beam_options,
        resume=args.resume, seed=args.seed, unlabelled=args.unlabelled,
    )


def run(args):
    from keras_ast.data.shards import ShardSetExistsError

    try:
        info = _make_shards_with_runner(args)
    except ShardSetExistsError as error:
        # The library's message names its argument; here it is a flag.
        return report_error("make-shards", error.describe("--resume"))
    except (FileExistsError, FileNotFoundError, ValueError,
            ImportError) as error:
        return report_error("make-shards", error)
    except KeyboardInterrupt:
        print(f"\nkeras-ast make-shards: interrupted; {args.output} is "
              "unfinished: run again with --resume to start over.",
              file=sys.stderr)
        return 130
    skipped = info.skipped
    if info.labelled:
        labels = (f"{info.num_classes} labels"
                  f"{' (multi-label)' if info.multi_label else ''}")
    else:
        labels = "unlabelled"
    print(
        f"{args.output}: {info.num_examples} examples, {labels}, "
        f"{len(info.shards)} {info.record_format} shards, "
        f"{len(skipped)} skipped."
    )
    for item in skipped[:10]:
        print(f"  skipped {item.path}: {item.reason}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more (see dataset.json)")
    # As classify: the shards are written, and the status tells a script
    # that some files are not in them.
    return 1 if skipped else 0
