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

The figures and their ratio to the Python loop are printed as Markdown and
written to the "## Input pipeline" section of `benchmarks/README.md` (the
section is replaced when it exists; the rest of the file is kept).

    python benchmarks/input_pipeline.py                      # 400 files
    python benchmarks/input_pipeline.py --quick --no-write   # smoke test
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
from measure import error_text, fmt_rate, fmt_times, logger  # noqa: E402
from measure import replace_section  # noqa: E402

README = HERE / "README.md"
SECTION = "## Input pipeline"
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
# Markdown.
# --------------------------------------------------------------------------


METHOD = """\
`benchmarks/input_pipeline.py` measures how many clips per second each way
of reading a labelled audio collection delivers to a training loop, on the
CPU alone (no model runs). Every reader yields shuffled `(waveforms,
labels)` batches as numpy arrays (float32 `(batch, samples)` at 16 kHz,
int32 labels), each clip cropped at a random start or zero-padded to the
clip length, full batches only (`training=True`).

- **Source**: N FLAC files (16-bit, mono, 16 kHz) of Gaussian noise × 0.1,
  in {classes} class folders, written to a temporary directory by the
  script. Noise is nearly incompressible, so the files are about as large
  as FLAC files get (see "Source" below); FLAC decoding speed hardly
  depends on the content.
- **Shard writing**: `make_shards(source, output, format=...,
  shard_size_mb=...)` with its default `num_workers` (all cores), once per
  format: it decodes every file (soundfile) and writes float32 audio, the
  sha256 of each shard and `dataset.json`. The figure is clips over the
  whole call. ArrayRecord shards are zstd-compressed (level 3, the
  `array_record` writer's default); TFRecord shards are not compressed.
- **Python loop**: for each file in a shuffled order,
  `keras_ast.load_audio(path)` (soundfile), `fit_length` (random
  crop or pad), `np.stack` of each batch; one process, one thread, no
  prefetching.
- **tf.data**: `tf_dataset(shards, batch_size, training=True,
  clip_seconds=..., repeat=True)` over the TFRecord shards (interleaved
  reads, parallel parse, shuffle buffer 1024, stateless random crop,
  prefetch), `.numpy()` of each batch.
- **Grain**: `grain_dataset(shards, batch_size, training=True,
  clip_seconds=..., num_workers=0 or 2, num_epochs=None)` over the
  ArrayRecord shards (global shuffle; reading, decompressing, decoding and
  cropping in the main process or in 2 worker processes with
  `mp_prefetch`). With workers, the script first marks Abseil's flags as
  parsed: grain 0.2.18 otherwise fails in a program that does not run
  under `absl.app` (google/grain#1355).

Each reader is an endless (repeating) stream. The first batch, one from
each worker process for Grain with workers (they take turns), is a
warm-up: its time, which includes start-up (building the tf.data graph and
filling its shuffle buffer, which holds the whole source when it has fewer
than 1024 clips; starting Grain's worker processes, which import only
keras_ast's data modules, not Keras or a backend), is shown apart. Then one epoch's worth of batches
(`N // batch` batches) is timed, each batch materialised as numpy arrays;
the figure is the clips of those batches over their time, and the time of
each batch is listed. "Last half" is the same figure over the later half
of the timed batches only: where it is much higher, start-up was still
going on during the timed epoch. Reading a repeating stream counts the refill of
tf.data's shuffle buffer at the epoch boundary. The source and
the shards were just written, so they are read from the page cache: these
are decoding and pipeline costs, not disk speed. The machine is shared with
other work (see the load averages), so expect run-to-run differences of
tens of per cent.

```
. .venv/bin/activate
python benchmarks/input_pipeline.py                      # rewrites this section
python benchmarks/input_pipeline.py --quick --no-write   # smoke test, prints only
```

| flag | effect |
|---|---|
| `--num-files N` | source files (400) |
| `--file-seconds S` | length of each source file (10 s) |
| `--clip-seconds S` | clip length of the batches (10 s) |
| `--batch-size N` | clips per batch (32) |
| `--shard-size-mb M` | `shard_size_mb` of `make_shards` (64) |
| `--quick` | 40 files of 2 s, clips of 2 s, batch 8: checks the plumbing |
| `--no-write` | print the Markdown only; leave this file alone |
| `--keep DIR` | keep the source and shards in DIR (default: a temporary directory, deleted) |

`run_benchmarks.py`'s full run rewrites this whole file, this section
included: run `input_pipeline.py` again after it.
"""


def render(settings, machine, source, shards, entries, command, elapsed,
           load_end):
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    n = settings["num_files"]
    batch = settings["batch_size"]
    lines = [SECTION, "", METHOD.format(classes=NUM_CLASSES)]
    lines += [
        "### Machine (input pipeline run)",
        "",
        f"- Date: {machine['date']}; commit {machine['commit'] or '?'}",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['memory']} memory",
        f"- Python {machine['python']} on {machine['os']}",
        f"- {versions}",
        f"- Load average at start: {machine['load']}; at the end: "
        f"{load_end}",
        "",
        f"### Results ({settings['mode']})",
        "",
        f"Command: `{command}`",
        "",
    ]
    if settings["quick"]:
        lines += ["**Smoke test only**: tiny sizes; the figures show that "
                  "the script works, not how fast anything is.", ""]
    raw = n * int(round(settings["file_seconds"] * SAMPLING_RATE)) * 4
    lines += [
        f"Source: {n} FLAC files of {settings['file_seconds']:g} s, "
        f"{source['bytes'] / 1e6:.1f} MB ({2 * source['bytes'] / raw:.0%} "
        f"of 16-bit PCM; the float32 audio is {raw / 1e6:.1f} MB), written in "
        f"{source['seconds']:.1f} s. Batches of {batch} clips of "
        f"{settings['clip_seconds']:g} s; timed: {n // batch} batches "
        f"({(n // batch) * batch} clips) after the warm-up.",
        "",
        "Shard writing (`make_shards`, decode + write, "
        f"{settings['workers']} worker processes; a first, untimed call on "
        f"2 files took {source['warmup_s']:.1f} s, mostly starting the "
        "forkserver and its worker processes; the size is the "
        "shard directory on disk):",
        "",
        "| format | shards | size (MB) | time (s) | clips/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for shard in shards:
        if "error" in shard:
            lines.append(f"| {shard['format']} | failed: "
                         f"{shard['error']} | | | |")
            continue
        lines.append(
            f"| {shard['format']} | {shard['shards']} | "
            f"{shard['bytes'] / 1e6:.1f} | {shard['seconds']:.1f} | "
            f"{fmt_rate(shard['clips_per_s'])} |")
    lines += [
        "",
        "Reading (training batches as numpy arrays):",
        "",
        "| reader | how | clips/s | ratio vs Python loop | clips/s, last "
        "half | warm-up (s) | timed (s) | timed batches (s) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    base = entries[0].get("clips_per_s")
    for entry in entries:
        if "error" in entry:
            why = entry["error"].replace("|", "\\|")[:300]
            lines.append(f"| {entry['name']} | {entry['how']} | failed: "
                         f"{why} | | | | | |")
            continue
        rate = entry["clips_per_s"]
        ratio = f"{rate / base:.2f}" if base else "—"
        lines.append(
            f"| {entry['name']} | {entry['how']} | {fmt_rate(rate)} | "
            f"{ratio} | "
            + (fmt_rate(entry["last_half_clips_per_s"])
               if "last_half_clips_per_s" in entry else "—")
            + f" | {entry['first_s']:.2f}"
            + (f" ({entry['warmup']} batches)" if entry["warmup"] > 1
               else "")
            + f" | {entry['seconds']:.2f} | "
            + fmt_times(entry["times_s"]) + " |")
    lines += ["", f"Whole run: {elapsed / 60:.1f} min.", ""]
    return "\n".join(lines)


def write_section(text, path=README):
    """Replaces the `## Input pipeline` section of `path`, or appends it."""
    replace_section(path, SECTION, text)


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
    parser.add_argument("--no-write", action="store_true",
                        help="print the Markdown only; do not touch "
                        "benchmarks/README.md")
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
    text = render(settings, machine, source, shards, entries, command,
                  elapsed, load_average())
    print(text)
    if not args.no_write:
        write_section(text)
        log(f"wrote the \"{SECTION[3:]}\" section of {README}")
    return 0 if all("error" not in e for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
