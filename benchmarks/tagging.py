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
with the reference's. The results go to a results file (JSON, `--output`;
by default `benchmarks/results/<date>-tagging.json`, a temporary file with
`--quick`) and are printed as Markdown (render.py).

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
from measure import Recorder, fmt_rate, log, results_path  # noqa: E402
from measure import write_results  # noqa: E402
from render import render  # noqa: E402
from run_benchmarks import BACKENDS, comma_list, run_child  # noqa: E402
from workload import FULL, QUICK, SAMPLING_RATE  # noqa: E402
from workload import make_recording, model_flops_per_clip  # noqa: E402

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
                        "2 layers of width 64): checks the plumbing; writes "
                        "a temporary file unless --output")
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
                        help="the results file (JSON; default "
                        "benchmarks/results/<date>-tagging.json)")
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
# The results file.
# --------------------------------------------------------------------------


METHOD = [
    "Audio seconds tagged per second of wall time (recording length ÷ the "
    "whole call), keras_ast's `ASTClassifier.tag` against a Python loop "
    "over 10.24 s windows with `transformers`' `ASTFeatureExtractor` and "
    "`ASTForAudioClassification` (sdpa), same random weights. The reference "
    "runs first and last; ratios are against the mean of its two times. "
    "Method: this script's docstring and the method of "
    "benchmarks/results/2026-11-27-tagging.json.",
]


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


def recording_note(settings, recording):
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


def bfloat16_notes(children, backends, ref):
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
    return [line + "."]


TABLE_COLUMNS = [
    "implementation", "how it is called", "windows", "windows scored",
    "warm-up (s)", "time (s)", "audio s/s", "ratio vs reference (mean)",
    "max score difference vs reference"]


def table_rows(children, backends, ref):
    rows = []
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
                rows.append([f"{name} ({entry['label']})", how,
                             "failed: " + entry["error"]])
                continue
            ratio = None
            if ref and ref.get("rate"):
                ratio = round(entry["rate"] / ref["rate"], 2)
                if entry["geometry"] == "default":
                    ratio = f"{ratio:.2f} (2× work)"
                elif entry["geometry"] == "bfloat16":
                    ratio = f"{ratio:.2f} (bfloat16)"
                elif role not in REFERENCE_KEYS and entry is top:
                    ratio = f"{ratio:.2f} (best)"
            rows.append([
                name, how, entry["windows"], entry["scored"],
                float(fmt_s(entry["warmup_s"])),
                float(fmt_s(entry["seconds"])),
                float(fmt_rate(entry["rate"])), ratio, _diff_cell(entry)])
        if child.get("problem"):
            rows.append([name, f"subprocess {child['problem']}"])
        if not entries and not child.get("problem"):
            rows.append([name, "not run"])
    return rows


def loads_notes(children, backends):
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
            "1/5/15 min): " + "; ".join(parts) + "."]


def verdict_notes(children, backends, ref):
    """The best backend with the reference's windows, and the target."""
    tops = [(role, best_same(tagging_entries(children, role)))
            for role in backends]
    tops = [(role, top) for role, top in tops if top]
    if not tops or not ref or not ref.get("rate"):
        return ["No ratio: a side is missing."]
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
    return lines


PROFILE_COLUMNS = [
    "implementation", "batch", "features (s/window)", "model (s/window)",
    "other (s/window)", "total (s/window)", "windows scored / asked"]


def _g(value):
    return float(f"{value:.3g}")


def profile_rows(children, backends):
    """Seconds per window: features, model, other; and the padding."""
    rows = []
    for key in REFERENCE_KEYS:
        timing = best_same(tagging_entries(children, key))
        if not timing or "features_s" not in timing:
            continue
        n = timing["windows"]
        rows.append([ROW_NAMES[key], 1, _g(timing["features_s"] / n),
                     _g((timing["seconds"] - timing["features_s"]) / n),
                     None, _g(timing["seconds"] / n), 1.0])
    for role in backends:
        top = best_same(tagging_entries(children, role))
        if not top or "batch_s" not in top:
            continue
        n, batches = top["windows"], top["scored"] // top["batch"]
        converter = top["converter_batch_s"] * batches / n
        model = (top["batch_s"] - top["converter_batch_s"]) * batches / n
        other = (top["seconds"] - top["batch_s"] * batches) / n
        rows.append([f"keras_ast {role}", top["batch"], _g(converter),
                     _g(model), float(f"{other:.2g}"),
                     _g(top["seconds"] / n), round(top["scored"] / n, 2)])
    return rows


def results(settings, machine, recording, children, backends, command,
            elapsed, load_end):
    """The run as a results file (see render.py)."""
    ref = reference_figure(children)
    mode = "quick smoke test, tiny sizes" if settings["quick"] else "full run"
    info = children.get("reference", {}).get("info", {})
    machine = dict(machine, load_start=machine["load"], load_end=load_end,
                   torch_threads=info.get("torch_threads"),
                   reference_feature_path=info.get("feature_path"))
    notes = [recording_note(settings, recording)]
    if settings["quick"]:
        notes.insert(0, "Smoke test only: tiny sizes; the figures show that "
                     "the script works, not how fast anything is.")
    after_table = len(notes)
    notes += loads_notes(children, backends)
    notes += verdict_notes(children, backends, ref)
    notes += bfloat16_notes(children, backends, ref)
    notes.append("Where the time goes: seconds per window asked for (hop = "
                 "window; keras_ast at its fastest batch size). Features "
                 "and model from the profile calls, scaled by the windows "
                 "scored; other = the rest of the timed call.")
    return {
        "title": f"Tagging a long recording ({mode})",
        "script": "benchmarks/tagging.py", "command": command,
        "date": machine.pop("date"), "commit": machine.pop("commit"),
        "machine": {k: v for k, v in machine.items() if k != "load"},
        "backends": backends, "method": METHOD,
        "wall_min": round(elapsed / 60, 1),
        "tables": [
            {"title": "Tagging, CPU", "after_note": after_table,
             "columns": TABLE_COLUMNS,
             "rows": table_rows(children, backends, ref)},
            {"title": "Where the time goes", "after_note": len(notes),
             "columns": PROFILE_COLUMNS,
             "rows": profile_rows(children, backends)},
        ],
        "notes": notes, "settings": settings, "raw": children,
    }


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
        if name != "--verbose":
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
    data = results(settings, machine, recording, children, backends,
                   command, elapsed, load_average())
    write_results(args.output or results_path("tagging", data["date"],
                                              args.quick), data, log)
    print(render(data))
    failed = [role for role, child in children.items()
              if child.get("problem") or any(
                  "error" in e for e in tagging_entries(children, role))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
