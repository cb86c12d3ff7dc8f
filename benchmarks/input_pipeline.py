#!/usr/bin/env python
"""Input-pipeline throughput (clips/s) on this CPU.

One run makes a labelled source of FLAC files (noise, 16 kHz mono, in a few
class folders, in a temporary directory), writes it once as TFRecord and once
as ArrayRecord shards with `keras_ast.data.shards.make_shards` (timed too),
then measures how fast each way of reading it delivers training batches
(`(waveforms, labels)` numpy arrays, random crop or zero-pad to the clip
length, shuffled):

1. a plain Python loop: `keras_ast.load_audio` (soundfile) of each
   source file, crop/pad, `np.stack` into batches;
2. `keras_ast.data.pipelines.tf_dataset` over the TFRecord shards;
3. `keras_ast.data.pipelines.grain_dataset` over the ArrayRecord shards,
   with `num_workers=0` and `num_workers=2`.

The figures and their ratio to the Python loop go to a results file (JSON,
`--output`; by default `benchmarks/results/<date>-input-pipeline.json`, a
temporary file with `--quick`) and are printed as Markdown (render.py).

    python benchmarks/input_pipeline.py                      # 400 files
    python benchmarks/input_pipeline.py --quick              # smoke test
    python benchmarks/input_pipeline.py --help               # every flag
"""

import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the shared modules beside this file
from machine import load_average, machine_info, warn_if_busy  # noqa: E402
from measure import error_text, logger, results_path  # noqa: E402
from measure import write_results  # noqa: E402
from render import render  # noqa: E402

SAMPLING_RATE = 16000
NUM_CLASSES = 4
PROGRESS = "[input-pipeline]"
FULL = dict(num_files=400, file_seconds=10.0, clip_seconds=10.0,
            batch_size=32)
QUICK = dict(num_files=40, file_seconds=2.0, clip_seconds=2.0, batch_size=8)
VERSIONS = ("keras-ast", "keras", "tensorflow", "grain", "array-record",
            "soundfile", "numpy")
FORMATS = ("tfrecord", "arrayrecord")

log = logger(PROGRESS)


def dir_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# --------------------------------------------------------------------------
# The source and the shards.
# --------------------------------------------------------------------------


def make_source(directory, num_files, seconds, seed=0):
    """`num_files` FLAC files of Gaussian noise x 0.1 in class folders."""
    import soundfile

    rng = np.random.default_rng(seed)
    samples = int(round(seconds * SAMPLING_RATE))
    paths = []
    for i in range(num_files):
        label = f"class{i % NUM_CLASSES}"
        folder = os.path.join(directory, label)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"clip{i:05d}.flac")
        audio = rng.standard_normal(samples).astype(np.float32) * 0.1
        soundfile.write(path, np.clip(audio, -1, 1), SAMPLING_RATE,
                        format="FLAC", subtype="PCM_16")
        paths.append((path, i % NUM_CLASSES))
    return paths


def write_shards(source, output, record_format, shard_size_mb):
    from keras_ast.data.shards import make_shards

    start = time.perf_counter()
    info = make_shards(source, output, format=record_format,
                       shard_size_mb=shard_size_mb, progress=False)
    seconds = time.perf_counter() - start
    return {"format": record_format, "seconds": seconds,
            "clips": info.num_examples, "shards": len(info.shards),
            "bytes": dir_size(output),
            "clips_per_s": info.num_examples / seconds}


# --------------------------------------------------------------------------
# The readers: each an endless stream of (waveforms, labels) batches.
# --------------------------------------------------------------------------


def python_loop(files, batch_size, num_samples, seed=0):
    """Decodes the source files one by one (soundfile), shuffled each epoch."""
    from keras_ast.data.audio_io import load_audio
    from keras_ast.data.pipelines import fit_length

    rng = np.random.default_rng(seed)
    waveforms, labels = [], []
    while True:
        for index in rng.permutation(len(files)):
            path, label = files[index]
            waveforms.append(fit_length(load_audio(path), num_samples, rng))
            labels.append(label)
            if len(waveforms) == batch_size:
                yield np.stack(waveforms), np.asarray(labels, np.int32)
                waveforms, labels = [], []


def tf_reader(path, batch_size, clip_seconds, seed=0):
    from keras_ast.data.pipelines import tf_dataset

    dataset = tf_dataset(path, batch_size, training=True,
                         clip_seconds=clip_seconds, seed=seed, repeat=True)
    for waveforms, labels in dataset:
        yield waveforms.numpy(), labels.numpy()


def grain_reader(path, batch_size, clip_seconds, num_workers, seed=0):
    from keras_ast.data.pipelines import grain_dataset

    dataset = grain_dataset(path, batch_size, training=True,
                            clip_seconds=clip_seconds, seed=seed,
                            num_workers=num_workers, num_epochs=None)
    iterator = iter(dataset)
    try:
        for waveforms, labels in iterator:
            yield np.asarray(waveforms), np.asarray(labels)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:  # stops mp_prefetch's worker processes
            close()


def time_reader(name, how, make_stream, batch_size, num_samples, num_batches,
                warmup=1):
    """`warmup` untimed batches, then `num_batches` timed ones.

    The warm-up pays for start-up (TensorFlow graph building and the fill
    of the shuffle buffer, Grain's worker processes, one batch from each);
    its time is reported apart.
    """
    log(f"{name}: ...")
    entry = {"name": name, "how": how, "warmup": warmup}
    stream = None
    try:
        start = time.perf_counter()
        stream = make_stream()
        for _ in range(warmup):
            check(next(stream), batch_size, num_samples)
        entry["first_s"] = time.perf_counter() - start
        times = []
        for _ in range(num_batches):
            tick = time.perf_counter()
            batch = next(stream)
            check(batch, batch_size, num_samples)
            times.append(time.perf_counter() - tick)
        entry["times_s"] = times
        entry["seconds"] = sum(times)
        entry["clips"] = num_batches * batch_size
        entry["clips_per_s"] = entry["clips"] / entry["seconds"]
        half = num_batches // 2
        if half >= 2:  # the later batches, with less start-up left in them
            entry["last_half_clips_per_s"] = (
                half * batch_size / max(sum(times[-half:]), 1e-9))
        log(f"{name}: {entry['clips_per_s']:.1f} clips/s ({entry['clips']} "
            f"clips in {entry['seconds']:.2f} s; warm-up "
            f"{entry['first_s']:.2f} s)")
        log(f"{name}: batch times {', '.join(f'{t:.2f}' for t in times)}")
    except Exception as error:  # recorded, so the other readers go on
        traceback.print_exc()
        entry["error"] = error_text(error)
        log(f"{name}: FAILED {entry['error']}")
    finally:
        if stream is not None:
            stream.close()
        gc.collect()
    return entry


def check(batch, batch_size, num_samples):
    waveforms, labels = batch
    if waveforms.shape != (batch_size, num_samples) or (
        waveforms.dtype != np.float32
    ) or labels.shape != (batch_size,):
        raise AssertionError(
            f"unexpected batch: waveforms {waveforms.shape} "
            f"{waveforms.dtype}, labels {labels.shape}")


# --------------------------------------------------------------------------
# The results file.
# --------------------------------------------------------------------------


METHOD = [
    "Each reader yields shuffled `(waveforms, labels)` training batches as "
    "numpy arrays (float32 at 16 kHz, int32 labels), each clip cropped at a "
    "random start or zero-padded, full batches only. Source: FLAC files of "
    "Gaussian noise × 0.1 in {classes} class folders (read from the page "
    "cache). The first batch (one per Grain worker) is a warm-up, shown "
    "apart; then one epoch (files // batch batches) is timed. Method: "
    "the method of benchmarks/results/2026-11-26-input-pipeline.json.",
]


def _sig(value):
    value = float(f"{value:.3g}")
    return round(value) if value >= 100 else value


def results(settings, machine, source, shards, entries, command, elapsed,
            load_end):
    """The run as a results file (see render.py)."""
    n, batch = settings["num_files"], settings["batch_size"]
    raw = n * int(round(settings["file_seconds"] * SAMPLING_RATE)) * 4
    notes = [
        f"Source: {n} FLAC files of {settings['file_seconds']:g} s, "
        f"{source['bytes'] / 1e6:.1f} MB ({2 * source['bytes'] / raw:.0%} "
        f"of 16-bit PCM; the float32 audio is {raw / 1e6:.1f} MB), written "
        f"in {source['seconds']:.1f} s. Batches of {batch} clips of "
        f"{settings['clip_seconds']:g} s; timed: {n // batch} batches "
        f"({(n // batch) * batch} clips) after the warm-up.",
        f"Shard writing: `make_shards`, decode + write, "
        f"{settings['workers']} worker processes; a first, untimed call on "
        f"2 files took {source['warmup_s']:.1f} s.",
    ]
    if settings["quick"]:
        notes.insert(0, "Smoke test only: tiny sizes; the figures show that "
                     "the script works, not how fast anything is.")
    shard_rows = [
        [s["format"], "failed: " + s["error"]] if "error" in s else
        [s["format"], s["shards"], round(s["bytes"] / 1e6, 1),
         round(s["seconds"], 1), _sig(s["clips_per_s"])]
        for s in shards]
    base = entries[0].get("clips_per_s")
    read_rows = []
    for e in entries:
        if "error" in e:
            read_rows.append([e["name"], e["how"], "failed: " + e["error"]])
            continue
        read_rows.append([
            e["name"], e["how"], _sig(e["clips_per_s"]),
            round(e["clips_per_s"] / base, 2) if base else None,
            _sig(e["last_half_clips_per_s"])
            if "last_half_clips_per_s" in e else None,
            round(e["first_s"], 2), e["warmup"], round(e["seconds"], 2),
            [round(t, 3) for t in e["times_s"]]])
    machine = dict(machine, load_start=machine["load"], load_end=load_end)
    return {
        "title": f"Input pipeline: clips per second delivered to a "
                 f"training loop ({settings['mode']})",
        "script": "benchmarks/input_pipeline.py", "command": command,
        "date": machine.pop("date"), "commit": machine.pop("commit"),
        "machine": {k: v for k, v in machine.items() if k != "load"},
        "backends": ["tensorflow (tf.data)", "grain"],
        "method": [m.format(classes=NUM_CLASSES) for m in METHOD],
        "wall_min": round(elapsed / 60, 1),
        "tables": [
            {"title": "Shard writing", "after_note": len(notes),
             "columns": ["format", "shards", "size (MB)", "time (s)",
                         "clips/s"], "rows": shard_rows},
            {"title": "Reading (training batches as numpy arrays)",
             "after_note": len(notes),
             "columns": ["reader", "how", "clips/s", "ratio vs Python loop",
                         "clips/s, last half", "warm-up (s)",
                         "warm-up batches", "timed (s)",
                         "timed batches (s)"], "rows": read_rows},
        ],
        "notes": notes, "settings": settings,
    }


# --------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-files", type=int,
                        help="source files (default 400; 40 with --quick)")
    parser.add_argument("--file-seconds", type=float,
                        help="length of each source file (10 s; 2 s with "
                        "--quick)")
    parser.add_argument("--clip-seconds", type=float,
                        help="clip length of the batches (10 s; 2 s with "
                        "--quick)")
    parser.add_argument("--batch-size", type=int,
                        help="clips per batch (32; 8 with --quick)")
    parser.add_argument("--shard-size-mb", type=float, default=64,
                        help="shard_size_mb of make_shards (64)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check the plumbing")
    parser.add_argument("--output", type=Path,
                        help="the results file (JSON; default "
                        "benchmarks/results/<date>-input-pipeline.json)")
    parser.add_argument("--keep", type=Path,
                        help="keep the source and shards in this (new or "
                        "empty) directory")
    return parser.parse_args(argv)


def settings_from(args):
    """FULL or QUICK sizes, with the command line's overrides."""
    settings = dict(QUICK if args.quick else FULL, quick=args.quick,
                    mode="quick smoke test" if args.quick else "full run")
    for key in ("num_files", "file_seconds", "clip_seconds", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if settings["num_files"] < settings["batch_size"]:
        raise SystemExit("--num-files must be at least --batch-size (one "
                         "full batch an epoch).")
    if settings["file_seconds"] <= 0 or settings["clip_seconds"] <= 0:
        raise SystemExit("--file-seconds and --clip-seconds must be > 0.")
    settings["workers"] = os.cpu_count() or 1
    return settings


def work_directory(stack, keep):
    """`keep` (new or empty), or a temporary directory `stack` removes."""
    if not keep:
        return stack.enter_context(
            tempfile.TemporaryDirectory(prefix="ast-input-pipeline-"))
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise SystemExit(f"--keep {keep}: not empty.")
    return str(keep)


def time_source(source_dir, settings):
    """Writes the source files; returns them and the source's time, size."""
    n = settings["num_files"]
    log(f"writing {n} FLAC files of {settings['file_seconds']:g} s "
        f"to {source_dir}")
    start = time.perf_counter()
    files = make_source(source_dir, n, settings["file_seconds"])
    source = {"seconds": time.perf_counter() - start,
              "bytes": dir_size(source_dir)}
    return files, source


def warm_up_shards(work, settings, shard_size_mb):
    """A first, untimed `make_shards` call on 2 files; returns its time.

    make_shards starts a forkserver on its first call in a process (a
    one-time cost): this call keeps that cost out of the figures.
    """
    log("make_shards warm-up (2 files, both formats)")
    start = time.perf_counter()
    warmup_dir = os.path.join(work, "warmup-source")
    make_source(warmup_dir, 2, min(settings["file_seconds"], 1.0), seed=1)
    for record_format in FORMATS:
        with contextlib.suppress(Exception):
            write_shards(warmup_dir, os.path.join(
                work, f"warmup-{record_format}"), record_format,
                shard_size_mb)
    return time.perf_counter() - start


def time_shards(source_dir, work, shard_size_mb):
    """Writes each format's shards; returns `{format: dir}`, the figures."""
    shard_dirs, shards = {}, []
    for record_format in FORMATS:
        output = os.path.join(work, record_format)
        log(f"make_shards format={record_format}")
        try:
            shards.append(write_shards(source_dir, output, record_format,
                                       shard_size_mb))
            shard_dirs[record_format] = output
            log(f"make_shards {record_format}: "
                f"{shards[-1]['clips_per_s']:.1f} clips/s "
                f"({shards[-1]['seconds']:.1f} s)")
        except Exception as error:
            traceback.print_exc()
            shards.append({"format": record_format,
                           "error": error_text(error)})
    return shard_dirs, shards


def readers(files, shard_dirs, batch, clip, num_samples):
    """`(name, how, make_stream, warm-up batches)` of each reader."""

    def unavailable(record_format):
        def stream():
            raise RuntimeError(f"no {record_format} shards")
        return stream

    table = [
        ("Python loop", "`keras_ast.load_audio` (soundfile) per file, crop, "
         "`np.stack`",
         lambda: python_loop(files, batch, num_samples), 1),
        ("tf.data", "`tf_dataset(training=True)`, TFRecord",
         (lambda: tf_reader(shard_dirs["tfrecord"], batch, clip))
         if "tfrecord" in shard_dirs else unavailable("TFRecord"), 1),
    ]
    for workers in (0, 2):
        table.append((
            f"Grain, {workers} workers",
            f"`grain_dataset(training=True, num_workers={workers})`, "
            "ArrayRecord",
            (lambda w=workers: grain_reader(
                shard_dirs["arrayrecord"], batch, clip, w))
            if "arrayrecord" in shard_dirs
            else unavailable("ArrayRecord"), max(1, workers)))
    return table


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = settings_from(args)
    command = " ".join(["python benchmarks/input_pipeline.py"]
                       + list(sys.argv[1:] if argv is None else argv))

    machine = machine_info(packages=VERSIONS)
    warn_if_busy(machine, log)
    started = time.perf_counter()

    with contextlib.ExitStack() as stack:
        work = work_directory(stack, args.keep)
        source_dir = os.path.join(work, "source")
        files, source = time_source(source_dir, settings)
        source["warmup_s"] = warm_up_shards(work, settings,
                                            args.shard_size_mb)
        shard_dirs, shards = time_shards(source_dir, work,
                                         args.shard_size_mb)
        batch, clip = settings["batch_size"], settings["clip_seconds"]
        num_samples = int(round(clip * SAMPLING_RATE))
        num_batches = settings["num_files"] // batch
        entries = [
            time_reader(name, how, make, batch, num_samples, num_batches,
                        warmup)
            for name, how, make, warmup in readers(
                files, shard_dirs, batch, clip, num_samples)
        ]
        if args.keep:
            log(f"kept the source and shards in {work}")

    elapsed = time.perf_counter() - started
    data = results(settings, machine, source, shards, entries, command,
                   elapsed, load_average())
    write_results(args.output or results_path(
        "input-pipeline", data["date"], args.quick), data, log)
    print(render(data))
    return 0 if all("error" not in e for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
