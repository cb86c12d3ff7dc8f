"""`keras-ast classify`: audio files in, labels or timelines out.

Argument parsing, printing and exit codes around
`keras_ast.inference.classify` (`classify`, or `tag` with `--timeline`),
which decodes files as `ASTClassifier.classify` does: folders walked for
audio files (sorted), a few threads decoding ahead of the model. A file
that does not decode is reported with its reason and skipped: the exit
status is then 1, after every other file was classified. Output goes to
standard output (or `--output`, written atomically) as a table, JSON or
CSV; the progress bar goes to standard error. Keras is imported only when
a command runs.
"""

import json
import sys

FORMATS = ("table", "json", "csv")


def token_share(text):
    """argparse `type=` for `--token-keep`: a share in (0, 1]."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"the share of patch tokens kept must be above 0 and at most "
            f"1, got {value:g}")
    return value


def add_arguments(parser):
    """The `keras-ast classify` flags."""
    from keras_ast.cli.common import add_audio_inputs
    from keras_ast.cli.common import positive_int

    add_audio_inputs(parser)
    parser.add_argument("--top-k", type=positive_int, default=5,
                        metavar="N", help="labels per file (default 5)")
    parser.add_argument("--threshold", type=float, metavar="X",
                        help="keep the labels scoring at least X instead "
                        "(still at most --top-k)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE",
                        help="write the output to FILE instead of printing it")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        metavar="N",
                        help="clips or windows per model call (default 16)")
    parser.add_argument("--dtype", choices=["float32", "mixed_bfloat16"],
                        default="float32",
                        help="the encoder's compute precision. "
                        "mixed_bfloat16 is faster where the hardware has "
                        "bfloat16 units (AMX, AVX512-BF16), and scores differ "
                        "by up to about 0.01 (features, LayerNorm and "
                        "scores stay float32)")
    parser.add_argument("--timeline", action="store_true",
                        help="tag long recordings: events with onset and "
                        "offset in seconds, window by window")
    parser.add_argument("--window", type=float, metavar="SECONDS",
                        help="--timeline window (default: the model's input)")
    parser.add_argument("--hop", type=float, metavar="SECONDS",
                        help="--timeline hop (default: half a window)")
    parser.add_argument("--plot", metavar="PNG",
                        help="draw the spectrogram (and timeline) of the one "
                        "file given")
    parser.add_argument("--token-keep", type=token_share, metavar="X",
                        help="keep this share of the patch tokens after the "
                        "first quarter of the layers, those the [CLS] and "
                        "distillation tokens attend to most: faster, "
                        "scores change a little; 0 < X <= 1 (default: the "
                        "preset's, 1: every token)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar")


def long_files_note(long, converter):
    """One line on the files classified on their start only (`long`:
    `(path, seconds)`), or None: it names the first and says how many
    more, and points to `--timeline`."""
    if not long:
        return None
    limit = converter.num_samples / converter.sampling_rate
    (path, seconds), more = long[0], len(long) - 1
    if not more:
        return (f"keras-ast classify: {path} ({seconds:.2f} s) is longer "
                f"than the model's input ({limit:.2f} s): only its first "
                f"{limit:.2f} s were classified; --timeline tags every "
                "window.")
    return (f"keras-ast classify: {path} ({seconds:.2f} s) and {more} more "
            f"file{'s' if more > 1 else ''} are longer than the model's "
            f"input ({limit:.2f} s): only their first {limit:.2f} s were "
            "classified; --timeline tags every window.")


def _labels_output(results, output_format):
    if output_format == "json":
        return json.dumps(
            [{"path": path,
              "labels": [{"label": label, "score": round(score, 6)}
                         for label, score in labels]}
             for path, labels in results], indent=2, ensure_ascii=False)
    if output_format == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["path", "rank", "label", "score"])
        for path, labels in results:
            for rank, (label, score) in enumerate(labels, 1):
                writer.writerow([path, rank, label, f"{score:.6f}"])
        return out.getvalue().rstrip("\n")
    lines = []
    for path, labels in results:
        lines.append(path)
        lines += [f"  {score:6.3f}  {label}" for label, score in labels]
    return "\n".join(lines)


def _timeline_output(timelines, output_format):
    from keras_ast.inference.timeline import events_csv

    if output_format == "json":
        return json.dumps([t.to_dict() for t in timelines], indent=2,
                          ensure_ascii=False)
    if output_format == "csv":
        return events_csv(timelines).rstrip("\n")
    lines = []
    for t in timelines:
        lines.append(f"{t.path} ({t.duration:.2f} s)")
        lines += [f"  {e.onset:8.2f} - {e.offset:8.2f} s  {e.score:6.3f}  "
                  f"{e.label}" for e in t.events]
    return "\n".join(lines)


def run(args):
    """Runs `keras-ast classify`; returns the exit status."""
    from keras_ast.inference.files import list_audio

    if args.plot and len(args.paths) != 1:
        print("keras-ast classify: error: --plot draws one file; give one "
              "PATH.", file=sys.stderr)
        return 2
    files = list_audio(args.paths)
    if not files:
        print("keras-ast classify: error: no audio files in "
              f"{', '.join(args.paths)}.", file=sys.stderr)
        return 2
    from keras_ast.inference import classify as inference
    from keras_ast.models.classifier import ASTClassifier
    from keras_ast.utils.files import atomic_write

    classifier = ASTClassifier.from_preset(args.preset, dtype=args.dtype)
    converter = classifier.preprocessor
    if args.timeline:
        try:  # before any file is decoded: a usage error, not a traceback
            inference.window_geometry(converter, args.window, args.hop)
        except ValueError as error:
            print(f"keras-ast classify: error: {error}", file=sys.stderr)
            return 2
    long = []
    options = ({} if args.token_keep is None
               else {"token_keep": args.token_keep})
    if args.timeline:
        timelines, skipped = inference.tag(
            classifier, files, window_seconds=args.window,
            hop_seconds=args.hop, top_k=args.top_k,
            batch_size=args.batch_size, skip_errors=True,
            progress=not args.no_progress, **options,
            **({} if args.threshold is None
               else {"threshold": args.threshold}))
        timelines = [t for t in timelines if t is not None]
        found = [t.path for t in timelines]
        text = _timeline_output(timelines, args.format)
    else:
        labels, skipped = inference.classify(
            classifier, files, top_k=args.top_k, threshold=args.threshold,
            batch_size=args.batch_size, skip_errors=True,
            progress=not args.no_progress, long_inputs=long, **options)
        results = [(path, found) for path, found in zip(files, labels)
                   if found is not None]
        found = [path for path, _ in results]
        text = _labels_output(results, args.format)
    if args.output:
        with atomic_write(args.output) as f:
            f.write(text + "\n")
    else:
        print(text)
    if args.plot and found:
        from keras_ast import plot
        from keras_ast.data.audio_io import load_audio

        # The one file drawn is decoded again: no other audio was kept.
        waveform = load_audio(found[0], converter.sampling_rate)
        timeline = timelines[0] if args.timeline else None
        plot.file_report(classifier, waveform, timeline,
                         path=found[0]).savefig(args.plot)
    note = long_files_note(long, converter)
    if note:
        print(note, file=sys.stderr)
    for path, reason in skipped:
        print(f"keras-ast classify: skipped {path}: {reason}",
              file=sys.stderr)
    return 1 if skipped else 0
