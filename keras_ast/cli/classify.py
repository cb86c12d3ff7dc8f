"""`keras-ast classify`: audio files in, labels or timelines out.

Folders are walked for audio files (sorted); each file is decoded (mono,
resampled to the model's rate), and a file that does not decode is reported
with its reason and skipped: the exit status is then 1, after every other
file was classified. Files are decoded by a few threads, a bounded number
ahead of the model, so decoding overlaps the model's calls (the decoders
and the frameworks release the GIL) and memory holds a few batches, not
every file. Output goes to standard output (or `--output`, written
atomically) as a table, JSON or CSV; the progress bar goes to standard
error. Keras is imported only when a command runs.
"""

import concurrent.futures
import json
import os
import sys

FORMATS = ("table", "json", "csv")


def add_arguments(parser):
    """The `keras-ast classify` flags."""
    from keras_ast.cli.common import positive_int

    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="audio files or folders of them")
    parser.add_argument("--preset", required=True,
                        help="a built-in name, owner/repo, hf://owner/repo "
                        "or a folder")
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
                        "mixed_bfloat16 is about twice as fast with PyTorch "
                        "on CPUs with AMX or AVX512-BF16, and scores differ "
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
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar")


def list_audio(paths):
    """Files of `paths`, folders walked for audio files, in sorted order."""
    from keras_ast.data.audio_io import AUDIO_EXTENSIONS

    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(root, name) for name in sorted(files)
                          if name.lower().endswith(AUDIO_EXTENSIONS)]
        else:
            found.append(path)  # a missing file is reported when decoded
    return found


def _progress(total, enabled):
    if enabled and total > 1:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="file", desc="classify",
                        file=sys.stderr)
        except ImportError:
            pass
    return None


def decode_workers():
    """Decoding threads: up to 8, one a core."""
    return max(1, min(8, os.cpu_count() or 1))


def decoded_files(files, sampling_rate, skipped, bar=None, ahead=32,
                  workers=None):
    """`(path, waveform)` of every file that decodes, in order.

    Files are decoded by `workers` threads (default `decode_workers()`), at
    most `ahead` files past the one last yielded, so decoding runs while
    the caller scores the files before. A file that does not decode is
    appended to `skipped` as `(path, reason)`; `bar.update(1)` follows
    every file.

    Example:
    >>> skipped = []
    >>> [path for path, _ in decoded_files(["a.wav", "gone.wav"], 16000,
    ...                                     skipped)]
    ['a.wav']
    """
    from keras_ast.data.audio_io import AudioDecodeError
    from keras_ast.data.audio_io import in_order
    from keras_ast.data.audio_io import load_audio

    with concurrent.futures.ThreadPoolExecutor(
            workers or decode_workers(), thread_name_prefix="decode") as pool:
        for path, future in in_order(
                lambda path: pool.submit(load_audio, path, sampling_rate),
                files, max(1, ahead)):
            try:
                waveform = future.result()
            except AudioDecodeError as error:
                skipped.append((path, error.reason))
                waveform = None
            if bar is not None:
                bar.update(1)
            if waveform is not None:
                yield path, waveform


def label_files(classifier, decoded, batch_size, top_k=5, threshold=None,
                long=None):
    """`[(path, labels)]`: `classifier.classify` of `(path, waveform)`
    pairs (`decoded_files`, at the model's rate), `batch_size` at a time as
    they arrive.

    A file longer than the model's input is classified on its first
    seconds, as `classify` does, without `classify`'s warning: its
    `(path, seconds)` is appended to `long` instead, for the caller to
    report.
    """
    converter = classifier.preprocessor
    limit = converter.num_samples
    results = []
    for chunk in _chunks(decoded, batch_size):
        for path, waveform in chunk:
            if long is not None and waveform.shape[0] > limit:
                long.append((path, waveform.shape[0]
                             / converter.sampling_rate))
        labels = classifier.classify(
            [waveform[:limit] for _, waveform in chunk], top_k=top_k,
            threshold=threshold, batch_size=batch_size,
            sampling_rate=converter.sampling_rate)
        results += [(path, found) for (path, _), found in zip(chunk, labels)]
    return results


def long_files_note(long, converter):
    """One line on the files `label_files` cut (`long`), or None: it names
    the first and says how many more, and points to `--timeline`."""
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


def _chunks(items, size):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
    if args.plot and len(args.paths) != 1:
        print("keras-ast classify: error: --plot draws one file; give one "
              "PATH.", file=sys.stderr)
        return 2
    files = list_audio(args.paths)
    if not files:
        print("keras-ast classify: error: no audio files in "
              f"{', '.join(args.paths)}.", file=sys.stderr)
        return 2
    from keras_ast.models.classifier import ASTClassifier
    from keras_ast.utils.files import atomic_write

    classifier = ASTClassifier.from_preset(args.preset, dtype=args.dtype)
    rate = classifier.preprocessor.sampling_rate
    if args.timeline:
        from keras_ast.inference.classify import window_geometry

        try:  # before any file is decoded: a usage error, not a traceback
            window_geometry(classifier.preprocessor, args.window, args.hop)
        except ValueError as error:
            print(f"keras-ast classify: error: {error}", file=sys.stderr)
            return 2
    skipped, results, long = [], [], []
    bar = _progress(len(files), not args.no_progress)
    # A timeline's file is a long recording: one ahead is enough to overlap,
    # and more would hold hours of audio.
    decoded = decoded_files(
        files, rate, skipped, bar,
        ahead=1 if args.timeline else 2 * max(args.batch_size, 1))
    if args.timeline:
        for path, waveform in decoded:
            timeline = classifier.tag(
                waveform, window_seconds=args.window, hop_seconds=args.hop,
                top_k=args.top_k, batch_size=args.batch_size,
                sampling_rate=rate,
                **({} if args.threshold is None
                   else {"threshold": args.threshold}))
            timeline.path = path
            # Only the first file's audio is drawn (--plot): keep no other.
            results.append((timeline, None if results else waveform))
        text = _timeline_output([t for t, _ in results], args.format)
    else:
        results = label_files(classifier, decoded, args.batch_size,
                              args.top_k, args.threshold, long)
        text = _labels_output(results, args.format)
    if bar is not None:
        bar.close()
    if args.output:
        with atomic_write(args.output) as f:
            f.write(text + "\n")
    else:
        print(text)
    if args.plot and results:
        from keras_ast import plot

        if args.timeline:
            (timeline, waveform), path = results[0], None
        else:
            timeline = None
            path, waveform = next(decoded_files(files, rate, []))
        plot.file_report(classifier, waveform, timeline,
                         path=path).savefig(args.plot)
    note = long_files_note(long, classifier.preprocessor)
    if note:
        print(note, file=sys.stderr)
    for path, reason in skipped:
        print(f"keras-ast classify: skipped {path}: {reason}",
              file=sys.stderr)
    return 1 if skipped else 0
