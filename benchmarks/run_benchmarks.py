#!/usr/bin/env python
"""Throughput of keras_ast against Hugging Face `transformers`' AST.

One run measures, on this machine:

1. feature extraction (waveforms -> normalised log-mel features) on the CPU:
   `transformers.ASTFeatureExtractor` (numpy path) against
   `keras_ast.ASTAudioConverter` on JAX, TensorFlow and PyTorch;
2. end to end, waveforms -> logits, on the CPU: the feature extractor plus
   `ASTForAudioClassification` (sdpa attention, float32) against
   `keras_ast.ASTClassifier` with its on-device preprocessor;
3. when a GPU is visible: the model forward alone, features already on the
   GPU, bfloat16, batch 64.

Every implementation runs in its own subprocess (the Keras backend is fixed
per process); the parent collects their JSON results and writes one results
file (JSON: the machine, the tables, the ratios keras_ast / reference, the
raw measurements) to `--output`, by default
`benchmarks/results/<date>-run.json` (a temporary file with `--quick`).
`python benchmarks/render.py FILE` prints it as Markdown.

    python benchmarks/run_benchmarks.py            # full run (slow on CPU)
    python benchmarks/run_benchmarks.py --quick    # smoke test, tiny sizes
    python benchmarks/run_benchmarks.py --help     # every flag

This file is the entry point: the command line, one child process per
implementation and backend (`--child`), and the results file. The
measurements are in reference.py and ours.py, the backend table in
backends.py, the tables in report.py.
"""

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the modules beside this file
from backends import TORCH_COMPILE  # noqa: E402
from machine import gpu_visible, load_average, machine_info  # noqa: E402
from machine import warn_if_busy  # noqa: E402
from measure import PROGRESS, Recorder, log, results_path  # noqa: E402
from measure import write_results  # noqa: E402
from report import results_file  # noqa: E402
from workload import FULL, OVERRIDABLE, QUICK  # noqa: E402

REPO = HERE.parent

BACKENDS = ("jax", "tensorflow", "torch")
SECTIONS = ("features", "e2e", "paired", "paired_bf16", "memory", "gpu")


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke test; writes a "
                        "temporary file unless --output")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"),
                        default="auto",
                        help="auto: add the GPU section when nvidia-smi "
                        "lists a GPU; cpu: never; gpu: always")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="Keras backends to measure (comma separated)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="sections to run: features,e2e,paired,"
                        "paired_bf16,memory,gpu")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--clip-seconds", type=float)
    for name in ("fe", "e2e", "gpu"):
        parser.add_argument(f"--{name}-warmup", type=int,
                            help="warm-up calls (at least 1)")
        parser.add_argument(f"--{name}-iters", type=int, help="timed calls")
    parser.add_argument("--gpu-batch-size", type=int)
    parser.add_argument("--memory-batch-size", type=int,
                        help="clips of the memory section's call (32)")
    parser.add_argument("--no-torch-compile", action="store_true",
                        help="skip the torch.compile attempt on the "
                        "converter")
    parser.add_argument("--compile-timeout", type=int, default=300,
                        help="seconds allowed to the torch.compile attempt")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="seconds allowed to each subprocess")
    parser.add_argument("--output", type=Path,
                        help="the results file (JSON; default "
                        "benchmarks/results/<date>-run.json)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the subprocesses' whole output")
    # Internal: a child process.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def comma_list(text, allowed, what):
    """`"a, b"` -> `["a", "b"]`; exits on a name not in `allowed`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = set(names) - set(allowed)
    if unknown:
        raise SystemExit(f"Unknown {what} {sorted(unknown)}.")
    return names


def settings_from(args):
    """FULL or QUICK sizes, with the command line's overrides."""
    settings = dict(QUICK if args.quick else FULL, quick=args.quick)
    for key in OVERRIDABLE:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


def find_gpu(sections, device):
    """The GPU to measure on (`--device`, nvidia-smi), or None."""
    if "gpu" not in sections or device == "cpu":
        return None
    gpu_name = gpu_visible()
    if gpu_name is None and device == "gpu":
        gpu_name = "requested with --device gpu"
    return gpu_name


# --------------------------------------------------------------------------
# A child: one implementation, its results written to --result-file.
# --------------------------------------------------------------------------


def child_main(args):
    settings = json.loads(args.settings)
    sections = args.sections.split(",")
    rec = Recorder(args.child, args.result_file)
    if args.child == "reference":
        import reference

        reference.run(settings, sections, rec)
    else:
        import ours

        ours.run(args.child, settings, sections, rec)


# --------------------------------------------------------------------------
# The parent: runs the children, merges their results.
# --------------------------------------------------------------------------


def child_env(role, gpu):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if role != "reference":
        env["KERAS_BACKEND"] = role
    if not gpu:
        # The CPU sections run on the CPU even on a machine with a GPU.
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    return env


def wait_for(process, timeout, verbose):
    """Waits for a child, showing its progress lines (or all, `verbose`).

    Returns `(problem or None, the last lines of its output)`; a child past
    `timeout` is killed with its process group.
    """
    tail = collections.deque(maxlen=60)

    def pump():
        for line in process.stdout:
            tail.append(line)
            if verbose or line.startswith(PROGRESS):
                sys.stderr.write(line)
                sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    problem = None
    try:
        process.wait(timeout=timeout)
        if process.returncode:
            problem = f"exited with status {process.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the child's own group
        process.wait()
        problem = f"did not finish within {timeout} s"
    reader.join(timeout=5)
    return problem, "".join(tail)


def run_child(role, sections, settings, gpu, timeout, verbose, script=None):
    """Runs one child; returns its results (partial ones on failure).

    `script` is the entry point the child runs as `--child` (this file by
    default; tagging.py passes its own).
    """
    log(f"start {role}: {', '.join(sections)} "
        f"({'GPU' if gpu else 'CPU'}, timeout {timeout} s)")
    start = time.perf_counter()
    folder = tempfile.mkdtemp(prefix=f"ast-bench-{role}-")
    result_file = os.path.join(folder, "results.json")
    try:
        process = subprocess.Popen(
            [sys.executable, str(script or Path(__file__).resolve()),
             "--child", role, "--sections", ",".join(sections),
             "--settings", json.dumps(settings),
             "--result-file", result_file],
            env=child_env(role, gpu), cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        problem, tail = wait_for(process, timeout, verbose)
        try:
            with open(result_file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {"role": role, "info": {}, "results": {}}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    data["wall_s"] = time.perf_counter() - start
    if problem:
        data["problem"] = problem
        log(f"{role} {problem}; last output:\n" + tail)
    return data


def merge(children, role, data):
    """Adds one child's data to `children[role]` (CPU and GPU runs)."""
    merged = children.setdefault(role, {"role": role, "info": {},
                                        "results": {}})
    merged["info"].update(data.get("info", {}))
    for section, entries in data.get("results", {}).items():
        merged["results"].setdefault(section, []).extend(entries)
    if data.get("problem"):
        merged["problem"] = "; ".join(
            p for p in (merged.get("problem"), data["problem"]) if p)


def run_torch_compile(settings, args):
    """The torch.compile attempt, in a child under `--compile-timeout`."""
    data = run_child("torch", ["features_compile"], settings, False,
                     args.compile_timeout, args.verbose)
    if data.get("problem") and not data["results"].get("features"):
        label, how = TORCH_COMPILE
        data["results"]["features"] = [{
            "label": label, "how": how,
            "skipped": f"skipped: the attempt {data['problem']}",
        }]
        data.pop("problem")
    return data


def run_all(roles, sections, settings, args):
    """Every role's children, in turn; returns `{role: merged data}`."""
    # The memory section runs in a fresh child: a process's peak memory is
    # a high-water mark that earlier sections would have raised.
    cpu_sections = [s for s in sections if s not in ("gpu", "memory")]
    children = {}
    for role in roles:
        # The paired sections run the reference inside each backend's child.
        if role == "reference":
            own = [s for s in cpu_sections
                   if s not in ("paired", "paired_bf16")]
        else:
            own = cpu_sections
        if "memory" in sections:
            merge(children, role, run_child(role, ["memory"], settings,
                                            False, args.timeout,
                                            args.verbose))
        if own:
            merge(children, role, run_child(role, own, settings, False,
                                            args.timeout, args.verbose))
        if (role == "torch" and "features" in cpu_sections
                and not args.no_torch_compile):
            merge(children, role, run_torch_compile(settings, args))
        if "gpu" in sections:
            merge(children, role, run_child(role, ["gpu"], settings, True,
                                            args.timeout, args.verbose))
    # This shared machine's speed drifts over minutes: the reference's CPU
    # timings run again after every backend, and the ratios use both runs.
    timed = [s for s in cpu_sections if s in ("features", "e2e")]
    if timed and "reference" in roles and len(roles) > 1:
        last = run_child("reference", timed, settings, False, args.timeout,
                         args.verbose)
        for entries in last.get("results", {}).values():
            for entry in entries:
                entry["label"] += " (last)"
        merge(children, "reference", last)
    return children


# --------------------------------------------------------------------------
# The results file.
# --------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0

    settings = settings_from(args)
    backends = comma_list(args.backends, BACKENDS, "backends")
    sections = comma_list(args.sections, SECTIONS, "sections")
    gpu_name = find_gpu(sections, args.device)
    if gpu_name is None:
        sections = [s for s in sections if s != "gpu"]

    machine = machine_info(gpu_name)
    warn_if_busy(machine, log)
    mode = "quick smoke test, tiny sizes" if args.quick else "full run"
    log(f"{mode}: sections {', '.join(sections) or 'none'}, backends "
        f"{', '.join(backends)}, GPU {gpu_name or 'none'}")
    started = time.perf_counter()
    children = run_all(["reference"] + backends, sections, settings, args)
    elapsed = time.perf_counter() - started

    machine["load_end"] = load_average()
    machine["load_start"] = machine.pop("load")
    threads = children.get("reference", {}).get("info", {}).get(
        "torch_threads")
    if threads:
        machine["torch_threads"] = threads
    tables = results_file(settings, children, backends, sections, gpu_name)
    data = {
        "title": f"keras_ast against transformers' AST ({mode})",
        "script": "benchmarks/run_benchmarks.py",
        "command": " ".join(["python benchmarks/run_benchmarks.py"]
                            + list(sys.argv[1:] if argv is None else argv)),
        "date": machine.pop("date"), "commit": machine.pop("commit"),
        "machine": machine, "backends": backends,
        "method": [
            f"Batch {settings['batch_size']} of {settings['clip_seconds']:g}"
            f" s clips (GPU: {settings['gpu_batch_size']}); warm-up + timed "
            f"calls: features {settings['fe_warmup']} + "
            f"{settings['fe_iters']}, end to end {settings['e2e_warmup']} "
            f"+ {settings['e2e_iters']}, GPU {settings['gpu_warmup']} + "
            f"{settings['gpu_iters']}. Ratios: keras_ast clips/s ÷ "
            f"reference clips/s from this run. Method: benchmarks/README.md "
            f"and the method of results/2026-11-28-full-run.json."],
        "wall_min": round(elapsed / 60, 1),
        "tables": tables["tables"], "notes": tables["notes"],
        "summary": tables["summary"], "settings": settings,
        "raw": children,
    }
    write_results(args.output or results_path("run", data["date"],
                                              args.quick), data, log)
    from render import render

    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
