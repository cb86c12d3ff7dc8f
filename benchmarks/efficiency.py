#!/usr/bin/env python
"""What the efficiency features save, on AST's AudioSet geometry.

On one backend (`--backend`, else `KERAS_BACKEND`, else JAX) and the
device it runs on, with the AudioSet model of `ASTBackbone()`'s defaults
(12 layers, width 768, 1024 frames, a 12 x 101 patch grid, 527 labels;
random weights unless `--preset`):

1. training: seconds per `train_on_batch` step of a batch of 4 feature
   arrays, without and with PaSST's patchout (40 of the 101 time columns
   and 4 of the 12 frequency rows dropped: 488 of 1212 patch tokens run);
2. inference end to end, waveforms to logits: `predict_on_batch` of 4
   clips of 10 s at `token_keep` 1.0, 0.7 and 0.5;
3. int8 (`classifier.quantize("int8")`) against float32: the preset's
   size on disk, `predict_on_batch` as in 2, and the largest difference
   of the scores (sigmoid) on those clips.

The settings compared in a table run in turn, one call each per round,
after their warm-up calls (the first compiles), so that every setting
sees the machine in the same state however its speed drifts; a ratio is
the median over the rounds of the first setting's time over this one's.
`--quick` runs the plumbing on a tiny model (2 layers, width 64, 128
frames, 1 s clips; patchout scaled to its 12 x 12 grid). Results go to a
results file (`--output`; by default
`benchmarks/results/<date>-efficiency-<backend>.json`, a temporary file
with `--quick`) and are printed as Markdown (render.py).

    python benchmarks/efficiency.py --backend jax
    python benchmarks/efficiency.py --backend torch --quick
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the modules beside this file
from machine import gpu_visible, load_average, machine_info  # noqa: E402
from machine import warn_if_busy  # noqa: E402
from measure import error_text, fmt_times, log  # noqa: E402
from measure import results_path, write_results  # noqa: E402
from render import render  # noqa: E402
from workload import FULL, QUICK, make_features, make_waveforms  # noqa: E402

BACKENDS = ("jax", "tensorflow", "torch")
SECTIONS = ("train", "inference", "int8")
# PaSST's AudioSet patchout (Koutini et al. 2022) on AST's 12 x 101 grid:
# dropped frequency rows and time columns, scaled to other grids.
PASST_GRID = (12, 101)
PASST_DROPPED = (4, 40)
TOKEN_KEEPS = (1.0, 0.7, 0.5)
TIMING = {
    False: dict(train_warmup=2, train_iters=5, infer_warmup=2,
                infer_iters=5),
    True: dict(train_warmup=1, train_iters=2, infer_warmup=1,
               infer_iters=2),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend (default: KERAS_BACKEND, else "
                        "jax)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model: a smoke test; writes a "
                        "temporary file unless --output")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="sections to run: train,inference,int8")
    parser.add_argument("--preset",
                        help="measure this preset (AudioSet geometry) "
                        "instead of random weights")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="clips per step and per call (4)")
    for name in ("train", "infer"):
        parser.add_argument(f"--{name}-warmup", type=int,
                            help="untimed calls of each setting (at least "
                            "1)")
        parser.add_argument(f"--{name}-iters", type=int,
                            help="timed rounds")
    parser.add_argument("--output", type=Path, help="the results file")
    return parser.parse_args(argv)


def settings_from(args):
    settings = dict(QUICK if args.quick else FULL, quick=args.quick,
                    batch_size=args.batch_size, preset=args.preset,
                    **TIMING[args.quick])
    for key in TIMING[False]:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


# --------------------------------------------------------------------------
# Models.
# --------------------------------------------------------------------------

BACKBONE_KEYS = ("hidden_dim", "num_layers", "num_heads", "intermediate_dim",
                 "patch_size", "frequency_stride", "time_stride",
                 "max_length", "num_mel_bins")


def make_classifier(settings, waveforms=True, **backbone_overrides):
    """The measured classifier: random weights, or `settings["preset"]`.

    `waveforms`: with its audio converter (else features in).
    """
    import keras_ast

    if settings["preset"]:
        return keras_ast.ASTClassifier.from_preset(
            settings["preset"], preprocessor=waveforms, **backbone_overrides)
    backbone = keras_ast.ASTBackbone(
        **{key: settings[key] for key in BACKBONE_KEYS},
        **backbone_overrides)
    converter = None
    if waveforms:
        converter = keras_ast.ASTAudioConverter(
            max_length=settings["max_length"],
            num_mel_bins=settings["num_mel_bins"])
    return keras_ast.ASTClassifier(
        backbone, num_classes=settings["num_classes"], multi_label=True,
        preprocessor=converter)


def patchout_for(grid):
    """PaSST's dropped `(frequency rows, time columns)` scaled to `grid`."""
    return tuple(max(0, min(size - 1, round(dropped * size / passt)))
                 for dropped, size, passt in zip(PASST_DROPPED, grid,
                                                 PASST_GRID))


def device_name():
    """The device the backend computes on, `cpu:0` or `gpu:0`."""
    import keras

    if keras.config.backend() != "torch":  # Keras' list is JAX's, TF's
        return keras.distribution.list_devices()[0]
    import torch

    return "gpu:0" if torch.cuda.is_available() else "cpu:0"


def folder_size(path):
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


# --------------------------------------------------------------------------
# Timing: every setting once per round.
# --------------------------------------------------------------------------


def time_rounds(runs, warmup, iters):
    """Times `runs` (`{label: call}`, each call waits for its result).

    Each setting's warm-up calls run first (at least one: it compiles),
    then `iters` rounds time one call of each setting in turn. Returns
    `{label: {"first_s", "times_s"}}`.
    """
    timed = {}
    for label, run in runs.items():
        start = time.perf_counter()
        run()
        timed[label] = {"first_s": time.perf_counter() - start,
                        "times_s": []}
        for _ in range(max(warmup, 1) - 1):
            run()
    for _ in range(max(iters, 1)):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            timed[label]["times_s"].append(time.perf_counter() - start)
    return timed


def ratio(timed, base, label):
    """Median over the rounds of `base`'s time / `label`'s."""
    return statistics.median(
        b / t for b, t in zip(timed[base]["times_s"],
                              timed[label]["times_s"]))


def median_s(timed, label):
    return statistics.median(timed[label]["times_s"])


def log_timed(section, timed):
    for label, entry in timed.items():
        log(f"{section} {label}: median {median_s(timed, label):.3f} s "
            f"(first call {entry['first_s']:.2f} s, timed "
            f"{fmt_times(entry['times_s'], ' s')})")


# --------------------------------------------------------------------------
# The sections.
# --------------------------------------------------------------------------


def train_table(settings, raw, notes):
    """Seconds per training step without and with patchout."""
    import numpy as np

    batch = settings["batch_size"]
    plain = make_classifier(settings, waveforms=False)
    grid = plain.backbone.token_grid
    frequency, time_columns = patchout_for(grid)
    dropped = make_classifier(settings, waveforms=False,
                              patchout_time=time_columns,
                              patchout_frequency=frequency)
    features = make_features(settings, batch)
    labels = (np.random.default_rng(2).random(
        (batch, plain.num_classes)) < 0.05).astype("float32")
    runs = {
        "none": lambda: plain.train_on_batch(features, labels),
        "patchout": lambda: dropped.train_on_batch(features, labels),
    }
    timed = time_rounds(runs, settings["train_warmup"],
                        settings["train_iters"])
    log_timed("train", timed)
    raw["train"] = timed
    tokens = grid[0] * grid[1]
    kept = (grid[0] - frequency) * (grid[1] - time_columns)
    speedup = ratio(timed, "none", "patchout")
    notes.append(
        f"Patchout: {speedup:.2f}x the steps per second of the full grid "
        f"({kept} of {tokens} patch tokens run in training).")
    return {
        "title": f"Training step, batch {batch} of features "
                 f"(`train_on_batch`), {device_name()}",
        "columns": ["patchout", "patch tokens in training", "s per step",
                    "speed-up"],
        "rows": [["none", tokens, round(median_s(timed, "none"), 3), 1.0],
                 [f"{time_columns} time columns, {frequency} frequency "
                  "rows", kept, round(median_s(timed, "patchout"), 3),
                  round(speedup, 2)]],
    }


def inference_table(settings, raw, notes):
    """End-to-end speed of `predict_on_batch` at each `token_keep`."""
    import keras_ast

    batch = settings["batch_size"]
    first = make_classifier(settings)
    # One backbone, so one model's weights in memory.
    classifiers = {keep: keras_ast.ASTClassifier(
        first.backbone, num_classes=first.num_classes,
        preprocessor=first.preprocessor, multi_label=first.multi_label,
        token_keep=keep)
        for keep in TOKEN_KEEPS}
    waveforms = make_waveforms(settings, batch)
    runs = {f"token_keep {keep}": (
        lambda c=classifier: c.predict_on_batch(waveforms))
        for keep, classifier in classifiers.items()}
    timed = time_rounds(runs, settings["infer_warmup"],
                        settings["infer_iters"])
    log_timed("inference", timed)
    raw["inference"] = timed
    base = f"token_keep {TOKEN_KEEPS[0]}"
    tokens = first.backbone.kept_tokens(1.0)
    rows = []
    for keep in TOKEN_KEEPS:
        label = f"token_keep {keep}"
        rows.append([keep, first.backbone.kept_tokens(keep),
                     round(median_s(timed, label), 3),
                     round(batch / median_s(timed, label), 2),
                     round(ratio(timed, base, label), 2)])
    notes.append(
        "Token pruning: at token_keep 0.5, "
        f"{ratio(timed, base, f'token_keep {TOKEN_KEEPS[-1]}'):.2f}x the "
        f"clips per second of token_keep 1.0 (pruned after layer "
        f"{max(1, first.backbone.num_layers // 4)} of "
        f"{first.backbone.num_layers}; {tokens} patch tokens before).")
    return {
        "title": f"Inference end to end, {batch} clips of "
                 f"{settings['clip_seconds']:g} s (`predict_on_batch`), "
                 f"{device_name()}",
        "columns": ["token_keep", "patch tokens after pruning",
                    "s per batch", "clips/s", "speed-up"],
        "rows": rows,
    }


def int8_table(settings, raw, notes):
    """int8 against float32: preset size, speed, score difference."""
    import keras
    import keras_ast
    import numpy as np

    batch = settings["batch_size"]
    waveforms = make_waveforms(settings, batch)
    with tempfile.TemporaryDirectory(prefix="ast-efficiency-") as scratch:
        float_preset = os.path.join(scratch, "float32")
        int8_preset = os.path.join(scratch, "int8")
        full = make_classifier(settings)
        full.save_to_preset(float_preset)
        quantized = keras_ast.ASTClassifier.from_preset(float_preset)
        start = time.perf_counter()
        quantized.quantize("int8")
        quantize_s = time.perf_counter() - start
        quantized.save_to_preset(int8_preset)
        sizes = {"float32": folder_size(float_preset),
                 "int8": folder_size(int8_preset)}
        runs = {"float32": lambda: full.predict_on_batch(waveforms),
                "int8": lambda: quantized.predict_on_batch(waveforms)}
        timed = time_rounds(runs, settings["infer_warmup"],
                            settings["infer_iters"])
        log_timed("int8", timed)
        # The preset loads back as the int8 model it was saved from.
        reloaded = keras_ast.ASTClassifier.from_preset(int8_preset)
        round_trip = float(np.abs(
            reloaded.predict_on_batch(waveforms)
            - quantized.predict_on_batch(waveforms)).max())
        del reloaded
    scores = {name: keras.ops.convert_to_numpy(model.scores(
        model.predict_on_batch(waveforms)))
        for name, model in (("float32", full), ("int8", quantized))}
    difference = float(np.abs(scores["float32"] - scores["int8"]).max())
    raw["int8"] = dict(timed, sizes_bytes=sizes, quantize_s=quantize_s,
                       largest_score_difference=difference,
                       preset_round_trip_difference=round_trip)
    speedup = ratio(timed, "float32", "int8")
    notes.append(
        f"int8: the preset is {sizes['int8'] / sizes['float32']:.0%} of "
        f"float32's size, {speedup:.2f}x its clips per second; the "
        f"largest score difference is {difference:.2g} ("
        + (settings["preset"] or "random weights") + "); quantizing took "
        f"{quantize_s:.1f} s; the int8 preset reloads to within "
        f"{round_trip:.2g} of the model's logits.")
    return {
        "title": f"int8 against float32, {batch} clips of "
                 f"{settings['clip_seconds']:g} s (`predict_on_batch`), "
                 f"{device_name()}",
        "columns": ["weights", "preset size (MB)", "s per batch",
                    "speed-up", "largest score difference"],
        "rows": [["float32", round(sizes["float32"] / 2**20, 1),
                  round(median_s(timed, "float32"), 3), 1.0, None],
                 ["int8", round(sizes["int8"] / 2**20, 1),
                  round(median_s(timed, "int8"), 3), round(speedup, 2),
                  float(f"{difference:.3g}")]],
    }


TABLES = {"train": train_table, "inference": inference_table,
          "int8": int8_table}


def main(argv=None):
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = (args.backend
                                   or os.environ.get("KERAS_BACKEND", "jax"))
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"Unknown sections {sorted(unknown)}; choose from "
                         f"{', '.join(SECTIONS)}.")
    settings = settings_from(args)
    import keras
    from keras_ast import import_tensorflow

    import_tensorflow()
    machine = machine_info(gpu_visible())
    warn_if_busy(machine, log)
    backend = keras.config.backend()
    mode = "quick smoke test, tiny sizes" if args.quick else "full run"
    log(f"{mode}: {backend} on {device_name()}, sections "
        f"{', '.join(sections)}")
    started = time.perf_counter()
    tables, notes, raw = [], [], {}
    for section in sections:
        try:
            table = TABLES[section](settings, raw, notes)
        except Exception as error:  # the other sections go on
            import traceback

            traceback.print_exc()
            notes.append(f"{section}: failed ({error_text(error)[:300]}).")
            log(f"{section}: FAILED {error_text(error)}")
            continue
        table["after_note"] = len(notes)  # its finding, then the table
        tables.append(table)
    machine["load_end"] = load_average()
    machine["load_start"] = machine.pop("load")
    command = "python benchmarks/efficiency.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    results = {
        "title": f"Efficiency features on the AudioSet geometry, {backend} "
                 f"({mode})",
        "script": "benchmarks/efficiency.py",
        "command": command.strip(),
        "date": machine.pop("date"), "commit": machine.pop("commit"),
        "machine": machine, "backends": [backend],
        "method": [__doc__.split("\n\n")[1], __doc__.split("\n\n")[2]],
        "wall_min": round((time.perf_counter() - started) / 60, 1),
        "tables": tables, "notes": notes, "settings": settings,
        "device": device_name(), "raw": raw,
    }
    path = args.output or results_path(f"efficiency-{backend}",
                                       results["date"], args.quick)
    write_results(path, results, log)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
