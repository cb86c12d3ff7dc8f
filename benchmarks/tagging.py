#!/usr/bin/env python
"""Tagging a long recording: keras_ast's `tag` against a reference loop.

One run makes a synthetic recording (10 minutes by default: speech, noise
of changing loudness and colour, notes, quiet), then, on the CPU:

1. the reference, as a user of Hugging Face `transformers` writes it: a
   Python loop over non-overlapping windows of the model's input length
   (10.24 s), each through `ASTFeatureExtractor` and
   `ASTForAudioClassification` (sdpa, `torch.inference_mode()`, sigmoid);
   its random weights are seeded and saved with `save_pretrained`;
2. on each Keras backend, `ASTClassifier.from_preset(that folder)`:
   `classifier.tag(recording, ...)` with the reference's windows (hop =
   window; each batch size of `--batch-sizes`), then with `tag`'s defaults
   (hop half a window: about twice the windows) at the fastest batch size.

Every implementation runs in its own child process (as in
run_benchmarks.py); each timed call follows an untimed warm-up on one
window's audio with the same shapes, so compiling is not timed. The figure
is audio seconds tagged per second of wall time, and the ratio keras_ast /
reference. The per-window scores of keras_ast (hop = window) are compared
with the reference's. The Markdown goes to the "## Tagging a long
recording" section of `benchmarks/README.md` (full run) or is printed
(`--quick`).

    python benchmarks/tagging.py              # full run (slow on CPU)
    python benchmarks/tagging.py --quick      # smoke test: 1 min, tiny model
    python benchmarks/tagging.py --help       # every flag
"""

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from keras_ast.utils.files import atomic_path
from keras_ast.utils.files import write_json

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the modules beside this file
from machine import load_average, machine_info, warn_if_busy  # noqa: E402
from measure import Recorder, fmt_rate, log, replace_section  # noqa: E402
from run_benchmarks import BACKENDS, comma_list, run_child  # noqa: E402
from workload import FULL, QUICK, SAMPLING_RATE  # noqa: E402
from workload import make_recording, model_flops_per_clip  # noqa: E402

README = HERE / "README.md"
SECTION = "## Tagging a long recording"
SCRIPT = Path(__file__).resolve()
TARGET = 1.2  # keras_ast / reference, hop = window, best backend
AGREEMENT = 1e-3  # the largest score difference that counts as agreeing
# The reference's two children: the first and the last of a run.
REFERENCE_KEYS = ("reference", "reference-end")
ROW_NAMES = {"reference": "reference (first)",
             "reference-end": "reference (last)"}
MODEL_KEYS = ("max_length", "num_mel_bins", "hidden_dim", "num_layers",
              "num_heads", "intermediate_dim", "patch_size",
              "frequency_stride", "time_stride", "num_classes")


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="1 min recording and a tiny model (128 frames, "
                        "2 layers of width 64): checks the plumbing; prints "
                        "the Markdown, writes nothing unless --output")
    parser.add_argument("--minutes", type=float,
                        help="length of the recording (10; 1 with --quick)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="Keras backends to measure (comma separated)")
    parser.add_argument("--batch-sizes", default="8,16",
                        help="batch sizes of tag with hop = window (the "
                        "fastest also runs the default geometry)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the recording and of the weights")
    parser.add_argument("--no-speech", action="store_true",
                        help="no espeak-ng speech in the recording")
    parser.add_argument("--work", type=Path,
                        help="keep the recording, the model and each "
                        "child's results in this folder; run again with "
                        "the same folder to resume (children with results "
                        "are not rerun)")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="seconds allowed to each subprocess")
    parser.add_argument("--output", type=Path,
                        help="write the section into this Markdown file "
                        "instead (default: benchmarks/README.md; nothing "
                        "with --quick)")
    parser.add_argument("--no-write", action="store_true",
                        help="print the Markdown only")
    parser.add_argument("--verbose", action="store_true",
                        help="show the subprocesses' whole output")
    # Internal: a child process (the arguments run_benchmarks.run_child
    # passes).
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sections", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from(args, work):
    """The model sizes (run_benchmarks' FULL or QUICK) and the recording."""
    sizes = QUICK if args.quick else FULL
    settings = {key: sizes[key] for key in MODEL_KEYS}
    minutes = args.minutes or (1.0 if args.quick else 10.0)
    if minutes <= 0:
        raise SystemExit("--minutes must be > 0.")
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    except ValueError:
        raise SystemExit(f"--batch-sizes {args.batch_sizes}: not integers.")
    if not batch_sizes or min(batch_sizes) < 1:
        raise SystemExit("--batch-sizes: at least one size, each >= 1.")
    settings.update(
        quick=args.quick, seconds=minutes * 60.0, batch_sizes=batch_sizes,
        seed=args.seed, work=str(work),
        # The reference's window: max_length frames of 10 ms.
        window=settings["max_length"] * SAMPLING_RATE // 100,
    )
    return settings


# --------------------------------------------------------------------------
# Children.
# --------------------------------------------------------------------------


def child_main(args):
    settings = json.loads(args.settings)
    rec = Recorder(args.child, args.result_file)
    if args.child == "reference":
        import reference

        reference.run(settings, ["tagging"], rec)
    else:
        import ours

        ours.run(args.child, settings, ["tagging"], rec)


def run_all(backends, settings, args):
    """The reference, each backend, the reference again: one child each.

    The reference runs first (it saves the model the others load) and
    again last, so that a change in the machine's load during the run
    shows. Each child's results go to `results-<key>.json` in the work
    folder, with the load average before and after it; with `--work`, a
    child whose results are already there (complete) is not run again.
    """
    children = {}
    keys = (REFERENCE_KEYS[0],) + tuple(backends) + (REFERENCE_KEYS[1],)
    for key in keys:
        role = "reference" if key in REFERENCE_KEYS else key
        path = Path(settings["work"]) / f"results-{key}.json"
        if args.work and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if not data.get("problem"):
                log(f"{key}: results of an earlier run in {path}")
                children[key] = dict(data, reused=True)
                continue
        before = load_average()
        data = run_child(role, ["tagging"], settings, False, args.timeout,
                         args.verbose, script=SCRIPT)
        data.update(load_before=before, load_after=load_average())
        write_json(path, data)
        children[key] = data
    return children


# --------------------------------------------------------------------------
# Markdown.
# --------------------------------------------------------------------------


METHOD = """\
`benchmarks/tagging.py` measures how fast a long recording is tagged on the
CPU: keras_ast's `ASTClassifier.tag` on each Keras backend against what a
user of Hugging Face `transformers` writes. The figure is **audio seconds
per second** (recording length ÷ wall time of the whole call); the ratio
keras_ast / reference compares figures from the same run.

- **Recording**: synthetic, made once by `workload.make_recording` and
  given to every side (a `.npy` file): scenes of 3–20 s, cross-faded —
  espeak-ng sentences in several voices over faint room noise (when
  espeak-ng and sox are installed), white/pink/red noise whose loudness
  drifts between -45 and -18 dBFS, gliding harmonic notes, near silence —
  over a -65 dBFS noise floor; float32, 16 kHz, mono.
- **Model**: the AudioSet geometry of `ASTConfig()` (hidden 768, 12 layers,
  12 heads, 1024 frames, strides 10/10, 527 classes), random weights:
  `ASTForAudioClassification` (sdpa) built after `torch.manual_seed(0)`,
  saved with `save_pretrained` (with its `ASTFeatureExtractor`) to a
  temporary folder, and loaded into keras_ast with
  `ASTClassifier.from_preset(folder)`. No download.
- **Reference**: a Python loop over non-overlapping windows of 1024 frames
  (10.24 s; the last one shorter): `ASTFeatureExtractor(...)(window,
  sampling_rate=16000, return_tensors="pt")` (its default path: numpy, as
  torchaudio is not installed here), the model under
  `torch.inference_mode()`, `torch.sigmoid`. It runs twice, first and
  last in the run (in a child process each), so that a change in the
  machine's load between the children shows; ratios are against the mean
  time of the two.
- **keras_ast**: `classifier.tag(recording, window_seconds=10.24,
  hop_seconds=10.24, batch_size=B)`: the reference's windows, so the same
  work; the ratio that counts. Then `classifier.tag(recording,
  batch_size=B)` with `tag`'s defaults (window 10.255 s, the model's whole
  input, hop half a window): **about twice the windows**, so twice the
  work for the same audio; its ratio is not like for like. `tag` scores the
  windows in batches of at most B through `predict_on_batch`
  (`keras_ast.inference.classify.batch_plan`: on PyTorch, even batches and no
  padding; on JAX and TensorFlow, which compile each shape, full batches
  and a last one padded to a power of two), then merges events (`top_k=3`,
  `threshold=0.3`). Each batch size of `--batch-sizes` is timed with
  hop = window; the fastest is profiled and runs the default geometry.
- **bfloat16**: the same windows once more on both sides, in bfloat16
  (matrix units: AMX, AVX512-BF16): the reference's loop with the model
  under `torch.autocast("cpu", dtype=torch.bfloat16)`, and keras_ast's
  `tag` at the fastest batch size on `from_preset(...,
  dtype="mixed_bfloat16")` (features, LayerNorm and scores stay float32).
  Their scores are compared with the reference's float32 scores. These
  rows are not in the float32 verdict.
- **Timing**: each implementation runs in its own child process (the Keras
  backend is fixed per process, no GPU visible). Before the timed call,
  an untimed warm-up tags one-window clips in the batch shapes the timed
  call will use, so compiling (XLA on JAX, `tf.function` tracing) is not
  in the figure; the warm-up's time is shown apart. One timed call each (a
  call is minutes long). torch uses its default threads on both sides.
- **Agreement**: the per-window scores of keras_ast with hop = window
  against the reference's sigmoid scores, same weights and windows: the
  largest absolute difference (agreeing means at most 1e-3).
- **Where the time goes**: the reference's loop is split by timing the
  extractor alone over all windows. For keras_ast, one more
  `predict_on_batch` of the fastest batch shape is timed, and the backend's
  converter call (`jax.jit`, `tf.function`, eager torch; median of 3)
  alone on the same batch: model = batch − converter; "other" is the `tag`
  time minus batches × batch time (host-side work: slicing and padding
  windows, event merging; it is within timing noise when near 0); padding
  is the windows scored (padding rows included) over the windows asked
  for.

```
. .venv/bin/activate
python benchmarks/tagging.py                  # full run: rewrites this section
python benchmarks/tagging.py --quick          # smoke test: prints only
```

| flag | effect |
|---|---|
| `--quick` | 1 min recording, tiny model (128 frames, 2 layers of width 64): checks the plumbing; prints the Markdown only (unless `--output`) |
| `--minutes M` | length of the recording (10; 1 with `--quick`) |
| `--backends jax,tensorflow,torch` | the Keras backends to measure |
| `--batch-sizes 8,16` | batch sizes of `tag` with hop = window |
| `--seed N` | seed of the recording and of the weights (0) |
| `--no-speech` | leave espeak-ng speech out of the recording |
| `--work DIR` | keep the recording, the model and each child's results in DIR; the same command again resumes (children with results are not rerun) |
| `--timeout S` | time allowed to each subprocess (3600 s) |
| `--output PATH` | write the section into PATH instead of this file |
| `--no-write` | print the Markdown only |
| `--verbose` | show the subprocesses' whole output |

`run_benchmarks.py`'s full run rewrites this whole file, this section
included: run `tagging.py` again after it.
"""


def fmt_s(seconds):
    return f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.2f}"


def tagging_entries(children, role):
    return children.get(role, {}).get("results", {}).get("tagging", [])


def best_same(entries, geometry="same"):
    """The fastest entry of `geometry` (default: the reference's), or None."""
    good = [e for e in entries
            if e.get("geometry") == geometry and "rate" in e]
    return max(good, key=lambda e: e["rate"]) if good else None


def reference_figure(children, geometry="same"):
    """The reference's figure: audio over the mean time of its timings.

    Returns `{"rate", "timings": [entry, ...]}` of its `geometry` entries,
    or None without one.
    """
    timings = [best_same(tagging_entries(children, key), geometry)
               for key in REFERENCE_KEYS]
    timings = [t for t in timings if t]
    if not timings:
        return None
    mean_s = sum(t["seconds"] for t in timings) / len(timings)
    audio_s = timings[0]["rate"] * timings[0]["seconds"]
    return {"rate": audio_s / mean_s, "timings": timings}


def render_machine(machine, children, load_end):
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    info = children.get("reference", {}).get("info", {})
    threads = info.get("torch_threads")
    return [
        "### Machine (tagging run)",
        "",
        f"- Date: {machine['date']}; commit {machine['commit'] or '?'}",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['memory']} memory"
        + (f"; torch uses {threads} threads" if threads else ""),
        f"- Python {machine['python']} on {machine['os']}",
        f"- {versions}",
        f"- Reference feature path: {info.get('feature_path', '?')}",
        f"- Load average at start: {machine['load']}; at the end: "
        f"{load_end}",
        "",
    ]


def render_recording(settings, recording):
    scenes = ", ".join(f"{n} {kind}" for kind, n in
                       recording["scenes"].items())
    sizes = (f"hidden {settings['hidden_dim']}, {settings['num_layers']} "
             f"layers, {settings['num_heads']} heads, "
             f"{settings['max_length']} frames, strides "
             f"{settings['frequency_stride']}/{settings['time_stride']}, "
             f"{settings['num_classes']} classes; "
             f"{model_flops_per_clip(settings) / 1e9:.3g} GFLOP per window")
    return (f"Recording: {settings['seconds']:g} s ({scenes} scenes; "
            f"speech {'included' if recording['speech'] else 'left out'}), "
            f"made in {recording['seconds']:.1f} s. Model: {sizes}; "
            f"random weights, seed {settings['seed']}.")


def _diff_cell(entry):
    diff = entry.get("max_abs_diff")
    if diff is None:
        return "—"
    if entry.get("geometry") == "bfloat16":
        return f"{diff:.1e} (bfloat16 vs float32)"
    return f"{diff:.1e} ({'agrees' if diff <= AGREEMENT else 'DIFFERS'})"


def render_bfloat16(children, backends, ref):
    """The same windows in bfloat16, against the reference in both."""
    tops = [(role, best_same(tagging_entries(children, role), "bfloat16"))
            for role in backends]
    tops = [(role, top) for role, top in tops if top]
    half = reference_figure(children, "bfloat16")
    if not tops or not ref or not ref.get("rate"):
        return []
    role, top = max(tops, key=lambda t: t[1]["rate"])
    line = ("bfloat16 (same windows; `dtype=\"mixed_bfloat16\"`: the "
            "encoder's products in bfloat16, features, LayerNorm and scores "
            "in float32): " + "; ".join(
                f"{r} {fmt_rate(t['rate'])} audio s/s" for r, t in tops)
            + f". Best: **{role}**, **{top['rate'] / ref['rate']:.2f}×** "
            "the reference in float32")
    if half:
        line += (f", **{top['rate'] / half['rate']:.2f}×** the reference "
                 f"under `torch.autocast` bfloat16 ({fmt_rate(half['rate'])} "
                 "audio s/s, mean of its runs)")
    diffs = [t.get("max_abs_diff") for _, t in tops] + [
        h.get("max_abs_diff") for h in (half or {}).get("timings", [])]
    diffs = [d for d in diffs if d is not None]
    if diffs:
        line += (f"; scores differ from float32 by up to {max(diffs):.1e} "
                 "(both sides' bfloat16 runs)")
    return [line + ".", ""]


def render_table(children, backends, ref):
    lines = [
        "| implementation | how it is called | windows (scored) | warm-up "
        "(s) | time (s) | audio s/s | ratio vs reference (mean) | max score "
        "difference vs reference |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for role in REFERENCE_KEYS + tuple(backends):
        child = children.get(role, {})
        name = ROW_NAMES.get(role, f"keras_ast {role}")
        entries = tagging_entries(children, role)
        top = best_same(entries)
        for entry in entries:
            how = entry.get("how", entry["label"])
            if role == REFERENCE_KEYS[1]:
                how = ("the same loop in bfloat16, last in the run"
                       if entry.get("geometry") == "bfloat16"
                       else "the same loop, last in the run")
            if "error" in entry:
                why = entry["error"].replace("|", "\\|")
                lines.append(f"| {name} ({entry['label']}) | {how} | "
                             f"failed: {why} | | | | | |")
                continue
            ratio = "—"
            if ref and ref.get("rate"):
                ratio = f"{entry['rate'] / ref['rate']:.2f}"
                if entry["geometry"] == "default":
                    ratio += " (2× work)"
                elif entry["geometry"] == "bfloat16":
                    ratio += " (bfloat16)"
                elif role not in REFERENCE_KEYS and entry is top:
                    ratio = f"**{ratio}**"
            lines.append(
                f"| {name} | {how} | {entry['windows']} "
                f"({entry['scored']}) | {fmt_s(entry['warmup_s'])} | "
                f"{fmt_s(entry['seconds'])} | {fmt_rate(entry['rate'])} | "
                f"{ratio} | {_diff_cell(entry)} |")
        if child.get("problem"):
            lines.append(f"| {name} | subprocess {child['problem']} | | | "
                         "| | | |")
        if not entries and not child.get("problem"):
            lines.append(f"| {name} | not run | | | | | | |")
    return lines + [""]


def render_loads(children, backends):
    """Each child's wall time and the load average before and after it."""
    parts = []
    for role in REFERENCE_KEYS[:1] + tuple(backends) + REFERENCE_KEYS[1:]:
        child = children.get(role)
        if not child or "load_before" not in child:
            continue
        parts.append(f"{ROW_NAMES.get(role, role)} "
                     f"{child['wall_s'] / 60:.1f} min, "
                     f"{child['load_before']} → {child['load_after']}"
                     + (" (an earlier run, resumed)" if child.get("reused")
                        else ""))
    if not parts:
        return []
    return ["Each child process (wall time; load average before → after, "
            "1/5/15 min): " + "; ".join(parts) + ".", ""]


def render_verdict(children, backends, ref):
    """The best backend with the reference's windows, and the target."""
    tops = [(role, best_same(tagging_entries(children, role)))
            for role in backends]
    tops = [(role, top) for role, top in tops if top]
    if not tops or not ref or not ref.get("rate"):
        return ["No ratio: a side is missing.", ""]
    per_backend = "; ".join(
        f"{role} (batch {top['batch']}) **{top['rate'] / ref['rate']:.2f}**"
        for role, top in tops)
    role, top = max(tops, key=lambda t: t[1]["rate"])
    ratio = top["rate"] / ref["rate"]
    lines = [
        "Same windows as the reference (hop = window), fastest batch size "
        f"per backend, keras_ast / reference: {per_backend}.",
        f"Best backend: **{role}**, batch {top['batch']}: "
        f"{fmt_rate(top['rate'])} audio s/s, **{ratio:.2f}×** the reference "
        f"({fmt_rate(ref['rate'])} audio s/s"
        + (", the mean time of its two runs; "
           + " and ".join(f"{top['rate'] / t['rate']:.2f}×" for t in
                          ref["timings"])
           + " against the first and the last alone"
           if len(ref["timings"]) > 1 else "")
        + f"). Target {TARGET}×: "
        f"**{'met' if ratio >= TARGET else 'not met'}**.",
    ]
    sizes = []
    for role in backends:
        same = [e for e in tagging_entries(children, role)
                if e.get("geometry") == "same" and "rate" in e]
        if len(same) > 1:
            sizes.append(f"{role} " + ", ".join(
                f"batch {e['batch']} {fmt_rate(e['rate'])}" for e in same))
    if sizes:
        lines.append("Batch sizes, audio s/s with hop = window: "
                     + "; ".join(sizes) + ".")
    diffs = [e["max_abs_diff"] for role in backends
             for e in tagging_entries(children, role)
             if "max_abs_diff" in e and e.get("geometry") == "same"]
    if diffs:
        lines.append(
            f"Scores: largest difference from the reference over "
            f"{len(diffs)} run{'s' if len(diffs) > 1 else ''} "
            f"{max(diffs):.1e} "
            f"({'all agree' if max(diffs) <= AGREEMENT else 'NOT all agree'}"
            f" to {AGREEMENT:g}).")
    return lines + [""]


def render_profile(children, backends):
    """Seconds per window: features, model, other; and the padding."""
    lines = [
        "#### Where the time goes",
        "",
        "Seconds per window asked for (hop = window; keras_ast at its "
        "fastest batch size). Features and model from the profile calls "
        "(see above), scaled by the windows scored; other = the rest of "
        "the timed call.",
        "",
        "| implementation | batch | features (s/window) | model "
        "(s/window) | other (s/window) | total (s/window) | windows "
        "scored / asked |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in REFERENCE_KEYS:
        timing = best_same(tagging_entries(children, key))
        if not timing or "features_s" not in timing:
            continue
        n = timing["windows"]
        lines.append(
            f"| {ROW_NAMES[key]} | 1 | {timing['features_s'] / n:.3g} | "
            f"{(timing['seconds'] - timing['features_s']) / n:.3g} | — | "
            f"{timing['seconds'] / n:.3g} | 1.00 |")
    for role in backends:
        top = best_same(tagging_entries(children, role))
        if not top or "batch_s" not in top:
            continue
        n, batches = top["windows"], top["scored"] // top["batch"]
        converter = top["converter_batch_s"] * batches / n
        model = (top["batch_s"] - top["converter_batch_s"]) * batches / n
        other = (top["seconds"] - top["batch_s"] * batches) / n
        lines.append(
            f"| keras_ast {role} | {top['batch']} | {converter:.3g} | "
            f"{model:.3g} | {other:+.2g} | {top['seconds'] / n:.3g} | "
            f"{top['scored'] / n:.2f} |")
    return lines + [""]


def render(settings, machine, recording, children, backends, command,
           elapsed, load_end):
    ref = reference_figure(children)
    mode = "quick smoke test, tiny sizes" if settings["quick"] else "full run"
    lines = [SECTION, "", METHOD]
    lines += render_machine(machine, children, load_end)
    lines += [f"### Results ({mode})", "", f"Command: `{command}`", ""]
    if settings["quick"]:
        lines += ["**Smoke test only**: tiny sizes; the figures show that "
                  "the script works, not how fast anything is.", ""]
    lines += [render_recording(settings, recording), ""]
    lines += render_table(children, backends, ref)
    lines += render_loads(children, backends)
    lines += render_verdict(children, backends, ref)
    lines += render_bfloat16(children, backends, ref)
    lines += render_profile(children, backends)
    lines += [f"Whole run: {elapsed / 60:.1f} min"
              + (" (this part; resumed from an earlier one)"
                 if any(c.get("reused") for c in children.values()) else "")
              + ".", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------


def reproducing_command(argv):
    """The command line that measures the same, without output flags."""
    words, skip = ["python benchmarks/tagging.py"], False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=")[0]
        if name in ("--output", "--timeout", "--work"):
            skip = "=" not in word
            continue
        if name not in ("--no-write", "--verbose"):
            words.append(word)
    return " ".join(words)


def write_recording(settings, no_speech):
    """Makes the recording once; every child reads `recording.npy`.

    A work folder that already holds one (`--work`, same settings) keeps
    it.
    """
    import numpy as np

    work = Path(settings["work"])
    described = work / "recording.json"
    if described.exists() and (work / "recording.npy").exists():
        log(f"recording of an earlier run in {work}")
        return json.loads(described.read_text(encoding="utf-8"))
    log(f"making a {settings['seconds']:g} s recording")
    start = time.perf_counter()
    audio, description = make_recording(
        settings["seconds"], seed=settings["seed"],
        speech=False if no_speech else None)
    with atomic_path(work / "recording.npy") as temp:
        with open(temp, "wb") as f:
            np.save(f, audio)
    description["seconds"] = time.perf_counter() - start
    write_json(described, description)
    return description


def work_folder(stack, settings_args, keep):
    """`(folder, settings)`: `--work` (checked) or a temporary folder.

    A kept folder records its settings; one of other settings is refused,
    so a resumed run measures what the first part measured.
    """
    if keep is None:
        work = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="ast-tagging-"))
        return work, settings_from(settings_args, work)
    keep.mkdir(parents=True, exist_ok=True)
    settings = settings_from(settings_args, keep.resolve())
    stored = keep / "settings.json"
    if stored.exists():
        earlier = json.loads(stored.read_text(encoding="utf-8"))
        if earlier != settings:
            raise SystemExit(f"--work {keep} holds a run of other settings "
                             f"({earlier}); use another folder.")
    else:
        write_json(stored, settings)
    return str(keep.resolve()), settings


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    backends = comma_list(args.backends, BACKENDS, "backends")
    command = reproducing_command(sys.argv[1:] if argv is None else argv)
    machine = machine_info()
    warn_if_busy(machine, log)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work, settings = work_folder(stack, args, args.work)
        recording = write_recording(settings, args.no_speech)
        log(f"{'quick smoke test' if args.quick else 'full run'}: "
            f"{settings['seconds']:g} s, backends {', '.join(backends)}, "
            f"batch sizes {settings['batch_sizes']}")
        children = run_all(backends, settings, args)
    elapsed = time.perf_counter() - started
    text = render(settings, machine, recording, children, backends, command,
                  elapsed, load_average())
    print(text)
    output = args.output or (None if args.quick else README)
    if output and not args.no_write:
        replace_section(output, SECTION, text)
        log(f"wrote the \"{SECTION[3:]}\" section of {output}")
    failed = [role for role, child in children.items()
              if child.get("problem") or any(
                  "error" in e for e in tagging_entries(children, role))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
