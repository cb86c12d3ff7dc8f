"""Describes the machine a benchmark ran on (stdlib only, no measurement).

CPU, cores, memory, GPU, Python, package versions, commit, load average and
date, for the "Machine" sections of both benchmark scripts.
"""

import contextlib
import datetime
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("keras", "keras-ast", "jax", "jaxlib", "tensorflow", "torch",
            "transformers", "numpy")


def _first_line_value(path, prefix):
    """The text after `:` of the first line of `path` starting `prefix`."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name():
    return (_first_line_value("/proc/cpuinfo", "model name")
            or platform.processor() or platform.machine())


def memory():
    """Total memory, `24 GiB`, or `""` when unknown."""
    total = _first_line_value("/proc/meminfo", "MemTotal")
    try:
        return f"{int(total.split()[0]) / 2**20:.0f} GiB"
    except (AttributeError, ValueError, IndexError):
        return ""


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def versions(packages=PACKAGES):
    """`{package: version}`, "not installed" where it is missing."""
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def commit():
    """`git describe --always --dirty` of the repository, or `""`."""
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average():
    """The 1, 5 and 15 minute load averages, `0.84 1.29 1.66`."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info(gpu_name=None, packages=PACKAGES):
    """Everything the "Machine" sections show, as a dict."""
    return {
        "cpu": cpu_name(), "cores": os.cpu_count(),
        "usable_cores": usable_cores(), "memory": memory(),
        "gpu": gpu_name or "none",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions(packages), "commit": commit(),
        "load": load_average(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
    }


def gpu_visible():
    """The GPUs `nvidia-smi` lists (`name, memory`; ...), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total",
             "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return "; ".join(names) if out.returncode == 0 and names else None


def warn_if_busy(machine, log):
    """Warns when other work loads the cores: it skews the figures."""
    try:
        load_1min = os.getloadavg()[0]
    except OSError:
        load_1min = 0.0
    if load_1min > 0.5 * machine["usable_cores"]:
        log(f"warning: load average {load_1min:.2f} on "
            f"{machine['usable_cores']} cores; other work skews the figures")


@contextlib.contextmanager
def gpu_utilisation(interval_ms=100):
    """A list that fills with `nvidia-smi`'s utilisation (%) samples of
    the first GPU, one every `interval_ms`, while the block runs; empty
    without `nvidia-smi`."""
    samples = []
    if shutil.which("nvidia-smi") is None:
        yield samples
        return
    sampler = subprocess.Popen(
        ["nvidia-smi", "--id=0", "--query-gpu=utilization.gpu",
         "--format=csv,noheader,nounits", f"--loop-ms={interval_ms}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield samples
    finally:
        sampler.terminate()
        output, _ = sampler.communicate(timeout=10)
        samples.extend(int(line) for line in output.split()
                       if line.strip().isdigit())
