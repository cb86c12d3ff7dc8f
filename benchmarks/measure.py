"""Timing and recording of measurements, and how their figures are printed.

Shared by run_benchmarks.py and tagging.py (whose child processes record
through `Recorder`) and input_pipeline.py; each writes its results file
with `write_results`. Stdlib and `keras_ast.utils.files` only.
"""

import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from keras_ast.utils.files import write_json

PROGRESS = "[bench]"  # run_benchmarks.py shows its children's lines with it


def logger(prefix):
    """A `log(message)` that prints `prefix message` to stderr."""

    def log(message):
        print(f"{prefix} {message}", file=sys.stderr, flush=True)

    return log


log = logger(PROGRESS)


def error_text(error):
    """`Type: message` of an exception, on one line."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def fmt_rate(rate):
    """Clips per second with 3 significant figures (no decimals from 100)."""
    if rate >= 100:
        return f"{rate:.0f}"
    if rate >= 10:
        return f"{rate:.1f}"
    return f"{rate:.3g}"


def fmt_times(times, unit=""):
    """Seconds of each call: `0.012, 0.011`."""
    return ", ".join(f"{t:.3f}" for t in times) + unit


def time_calls(run, warmup, iters):
    """Calls `run()` (which must wait for its result); returns the timings.

    The first `warmup` calls (at least one: it compiles) are not timed,
    except the very first, whose time is returned apart as `first_s`; then
    `iters` (at least one) calls are timed. Returns `(first_s, times)`.
    """
    start = time.perf_counter()
    run()
    first_s = time.perf_counter() - start
    for _ in range(max(warmup, 1) - 1):
        run()
    times = []
    for _ in range(max(iters, 1)):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return first_s, times


def _record_failure(name, entry, error):
    """Records a failed measurement in `entry`, so the others go on."""
    traceback.print_exc()
    text = error_text(error).split(" Hint:")[0]  # torch's long advice
    entry["error"] = text[:300]
    log(f"{name}: FAILED {entry['error']}")


class Recorder:
    """Collects one child's measurements; rewrites its JSON after each.

    The file (`{"role", "info", "results": {section: [entry, ...]}}`) is
    rewritten atomically, so the parent reads the measurements made so far
    even when the child dies or is killed.
    """

    def __init__(self, role, path):
        self.path = path
        self.data = {"role": role, "info": {}, "results": {}}
        self.flush()

    def flush(self):
        write_json(self.path, self.data)

    def info(self, **kwargs):
        self.data["info"].update(kwargs)
        self.flush()

    def add(self, section, entry):
        self.data["results"].setdefault(section, []).append(entry)
        self.flush()
        return entry

    def measure(self, section, label, how, run, batch, warmup, iters):
        """Times `run()` with `time_calls` and records it.

        The figure is the batch size over the median of the timed calls.
        A failure is recorded (as `error`), so the other measurements go on.
        """
        entry = {"label": label, "how": how, "batch": batch}
        name = f"{self.data['role']} {section} {label}"
        try:
            entry["first_s"], times = time_calls(run, warmup, iters)
            entry["times_s"] = times
            entry["clips_per_s"] = batch / statistics.median(times)
            log(f"{name}: {entry['clips_per_s']:.3f} clips/s (first call "
                f"{entry['first_s']:.2f} s, timed {fmt_times(times, ' s')})")
        except Exception as error:
            _record_failure(name, entry, error)
        return self.add(section, entry)

    def measure_pair(self, section, label, how, run, reference_run, batch,
                     warmup, iters):
        """Times `reference_run()` and `run()` in turn; records both.

        Each round times the reference's call, then this one, so the two
        calls of a round see the machine in the same state however its
        speed drifts over minutes. The figure `ratio` is the median over
        the rounds of reference time / this time (above 1: this is faster).
        """
        entry = {"label": label, "how": how, "batch": batch}
        name = f"{self.data['role']} {section} {label}"
        try:
            for _ in range(max(warmup, 1)):
                reference_run()
                run()
            ours, reference = [], []
            for _ in range(max(iters, 1)):
                for call, times in ((reference_run, reference), (run, ours)):
                    start = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - start)
            ratios = [r / o for r, o in zip(reference, ours)]
            entry.update(times_s=ours, reference_times_s=reference,
                         ratios=ratios, ratio=statistics.median(ratios))
            log(f"{name}: {entry['ratio']:.2f}x the reference (rounds "
                f"{fmt_times(ratios, '')}; keras_ast {fmt_times(ours, ' s')},"
                f" reference {fmt_times(reference, ' s')})")
        except Exception as error:
            _record_failure(name, entry, error)
        return self.add(section, entry)

    def measure_once(self, section, entry, warm_up, run, amount, unit):
        """Times one `run()` after an untimed `warm_up()`; records `entry`.

        For work too long to repeat (tagging a long recording): `warm_up()`
        runs the same shapes on a small input (it compiles), its time is
        recorded apart as `warmup_s`; then one `run()` is timed
        (`seconds`), and the figure `rate` is `amount` over it (`unit`
        names it, e.g. audio seconds per second). Returns `run()`'s result,
        or None when it failed (recorded as `error`, so the other
        measurements go on).
        """
        name = f"{self.data['role']} {section} {entry['label']}"
        result = None
        try:
            start = time.perf_counter()
            warm_up()
            entry["warmup_s"] = time.perf_counter() - start
            log(f"{name}: warm-up {entry['warmup_s']:.2f} s; timing ...")
            start = time.perf_counter()
            result = run()
            entry["seconds"] = time.perf_counter() - start
            entry["rate"] = amount / entry["seconds"]
            log(f"{name}: {entry['rate']:.3f} {unit} ({amount:g} in "
                f"{entry['seconds']:.1f} s; warm-up "
                f"{entry['warmup_s']:.2f} s)")
        except Exception as error:
            _record_failure(name, entry, error)
        self.add(section, entry)
        return result

    def skip(self, section, label, how, reason):
        return self.add(section, {"label": label, "how": how,
                                  "skipped": reason})


def results_path(name, date, quick=False):
    """`benchmarks/results/<date>-<name>.json`; a temporary file if quick."""
    if quick:
        return Path(tempfile.gettempdir()) / f"ast-bench-{name}-quick.json"
    stamp = date.replace(" UTC", "").replace(" ", "-").replace(":", "")
    return Path(__file__).resolve().parent / "results" / f"{stamp}-{name}.json"


def write_results(path, data, log):
    """Writes a results file (JSON, see render.py) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    log(f"wrote {path}")
