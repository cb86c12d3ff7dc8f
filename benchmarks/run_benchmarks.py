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
per process); the parent collects their JSON results and writes the figures
and the ratios keras_ast / reference as Markdown: `benchmarks/README.md` for a
full run, `benchmarks/results-quick.md` for `--quick`.

    python benchmarks/run_benchmarks.py            # full run (slow on CPU)
    python benchmarks/run_benchmarks.py --quick    # smoke test, tiny sizes
    python benchmarks/run_benchmarks.py --help     # every flag
"""

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
README = HERE / "README.md"
QUICK_OUTPUT = HERE / "results-quick.md"
PLACEHOLDER_MARK = "<!-- results: not yet measured -->"

SAMPLING_RATE = 16000
BACKENDS = ("jax", "tensorflow", "torch")
SECTIONS = ("features", "e2e", "gpu")
PROGRESS = "[bench]"

# Model and clip sizes. FULL is the AudioSet configuration of
# `transformers.ASTConfig()` (527 labels); QUICK only checks the plumbing.
FULL = dict(
    clip_seconds=10.0, max_length=1024, num_mel_bins=128, hidden_dim=768,
    num_layers=12, num_heads=12, intermediate_dim=3072, patch_size=16,
    frequency_stride=10, time_stride=10, num_classes=527,
    batch_size=4, fe_warmup=2, fe_iters=10, e2e_warmup=1, e2e_iters=2,
    gpu_batch_size=64, gpu_warmup=3, gpu_iters=20,
)
QUICK = dict(
    FULL, clip_seconds=1.0, max_length=128, hidden_dim=64, num_layers=2,
    num_heads=4, intermediate_dim=128, fe_warmup=1, fe_iters=3,
    e2e_warmup=1, e2e_iters=2, gpu_batch_size=8, gpu_warmup=1, gpu_iters=3,
)


# --------------------------------------------------------------------------
# Shared helpers (parent and children).
# --------------------------------------------------------------------------


def log(message):
    print(f"{PROGRESS} {message}", file=sys.stderr, flush=True)


def make_waveforms(settings, batch_size=None):
    """Random noise * 0.1, float32 `(batch, samples)`, the same every run."""
    import numpy as np

    batch_size = batch_size or settings["batch_size"]
    samples = int(round(settings["clip_seconds"] * SAMPLING_RATE))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((batch_size, samples)).astype(np.float32)
    return noise * np.float32(0.1)


def make_features(settings, batch_size):
    """Random features `(batch, max_length, num_mel_bins)`, float32."""
    import numpy as np

    rng = np.random.default_rng(1)
    shape = (batch_size, settings["max_length"], settings["num_mel_bins"])
    return rng.standard_normal(shape).astype(np.float32)


def model_flops_per_clip(settings):
    """Multiply-adds * 2 of one forward pass (encoder and patch embedding)."""
    d, inner = settings["hidden_dim"], settings["intermediate_dim"]
    patch = settings["patch_size"]
    f_grid = (settings["num_mel_bins"] - patch) // settings["frequency_stride"]
    t_grid = (settings["max_length"] - patch) // settings["time_stride"]
    patches = (f_grid + 1) * (t_grid + 1)
    tokens = patches + 2
    per_layer = (
        2 * tokens * d * d * 4  # query, key, value, output projections
        + 2 * tokens * d * inner * 2  # MLP
        + 2 * tokens * tokens * d * 2  # scores and context
    )
    embedding = 2 * patches * patch * patch * d
    return settings["num_layers"] * per_layer + embedding


class Recorder:
    """Collects one child's measurements; rewrites its JSON after each."""

    def __init__(self, role, path):
        self.path = path
        self.data = {"role": role, "info": {}, "results": {}}
        self.flush()

    def flush(self):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)

    def info(self, **kwargs):
        self.data["info"].update(kwargs)
        self.flush()

    def measure(self, section, label, how, run, batch, warmup, iters):
        """Times `run()` (which must wait for its result) and records it.

        The first `warmup` calls (at least one: it compiles) are not
        counted; `first_s` is the first call's time. The figure is the
        batch size over the median of the `iters` timed calls.
        """
        entry = {"label": label, "how": how, "batch": batch}
        try:
            start = time.perf_counter()
            run()
            entry["first_s"] = time.perf_counter() - start
            for _ in range(max(warmup, 1) - 1):
                run()
            times = []
            for _ in range(max(iters, 1)):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            entry["times_s"] = times
            entry["clips_per_s"] = batch / statistics.median(times)
            log(f"{self.data['role']} {section} {label}: "
                f"{entry['clips_per_s']:.3f} clips/s (first call "
                f"{entry['first_s']:.2f} s, timed {_fmt_times(times)})")
        except Exception as error:  # recorded, so the other runs go on
            traceback.print_exc()
            text = " ".join(f"{type(error).__name__}: {error}".split())
            text = text.split(" Hint:")[0]  # torch's long advice
            entry["error"] = text[:300]
            log(f"{self.data['role']} {section} {label}: FAILED "
                f"{entry['error']}")
        self.data["results"].setdefault(section, []).append(entry)
        self.flush()
        return entry

    def skip(self, section, label, how, reason):
        self.data["results"].setdefault(section, []).append(
            {"label": label, "how": how, "skipped": reason}
        )
        self.flush()


def _measure_predict_on_batch(rec, settings, waveforms, e2e_args):
    """Times `predict_on_batch` end to end; returns the classifier."""
    import numpy as np

    classifier = _classifier(settings, _converter(settings))
    rec.measure(
        "e2e", "predict_on_batch",
        "`classifier.predict_on_batch(waveforms)`",
        lambda: np.asarray(classifier.predict_on_batch(waveforms)),
        *e2e_args,
    )
    return classifier


def _fmt_times(times):
    return ", ".join(f"{t:.3f}" for t in times) + " s"


def fmt_rate(rate):
    if rate >= 100:
        return f"{rate:.0f}"
    if rate >= 10:
        return f"{rate:.1f}"
    return f"{rate:.3g}"


# --------------------------------------------------------------------------
# Children: the reference (transformers) and one Keras backend each.
# --------------------------------------------------------------------------


def child_reference(settings, sections, rec):
    import torch
    import transformers
    from transformers.models.audio_spectrogram_transformer import (
        feature_extraction_audio_spectrogram_transformer as fe_module,
    )

    # The brief's reference is the numpy path; with torchaudio installed the
    # extractor would take the torchaudio Kaldi path instead.
    had_torchaudio = bool(fe_module.is_speech_available())
    fe_module.is_speech_available = lambda: False
    rec.info(
        torch_threads=torch.get_num_threads(),
        torchaudio_installed=had_torchaudio,
        feature_path="numpy",
    )
    extractor = transformers.ASTFeatureExtractor(
        num_mel_bins=settings["num_mel_bins"],
        max_length=settings["max_length"],
    )
    clips = list(make_waveforms(settings))
    batch = len(clips)

    def config():
        return transformers.ASTConfig(
            hidden_size=settings["hidden_dim"],
            num_hidden_layers=settings["num_layers"],
            num_attention_heads=settings["num_heads"],
            intermediate_size=settings["intermediate_dim"],
            patch_size=settings["patch_size"],
            frequency_stride=settings["frequency_stride"],
            time_stride=settings["time_stride"],
            max_length=settings["max_length"],
            num_mel_bins=settings["num_mel_bins"],
            num_labels=settings["num_classes"],
        )

    if "features" in sections:
        def run_features():
            out = extractor(clips, sampling_rate=SAMPLING_RATE,
                            return_tensors="np")
            return out["input_values"]

        rec.measure(
            "features", "reference",
            "`ASTFeatureExtractor()(clips, sampling_rate=16000, "
            "return_tensors=\"np\")`, numpy path",
            run_features, batch, settings["fe_warmup"], settings["fe_iters"],
        )

    if "e2e" in sections:
        model = transformers.AutoModelForAudioClassification.from_config(
            config(), attn_implementation="sdpa"
        ).eval()

        def run_e2e():
            with torch.no_grad():
                inputs = extractor(clips, sampling_rate=SAMPLING_RATE,
                                   return_tensors="pt")
                return model(**inputs).logits.numpy()

        rec.measure(
            "e2e", "reference",
            "`ASTFeatureExtractor` + `ASTForAudioClassification` (sdpa, "
            "float32) under `torch.no_grad()`",
            run_e2e, batch, settings["e2e_warmup"], settings["e2e_iters"],
        )
        del model

    if "gpu" in sections:
        if not torch.cuda.is_available():
            rec.skip("gpu", "reference", "", "torch sees no CUDA device")
            return
        rec.info(gpu=torch.cuda.get_device_name(0))
        gpu_batch = settings["gpu_batch_size"]
        model = transformers.AutoModelForAudioClassification.from_config(
            config(), attn_implementation="sdpa", dtype=torch.bfloat16
        ).to("cuda").eval()
        features = torch.from_numpy(make_features(settings, gpu_batch)).to(
            "cuda", torch.bfloat16
        )

        def run_gpu():
            with torch.no_grad():
                logits = model(input_values=features).logits
            torch.cuda.synchronize()
            return logits

        rec.measure(
            "gpu", "reference",
            "`ASTForAudioClassification` (sdpa), bfloat16 weights and "
            "features, `torch.no_grad()`",
            run_gpu, gpu_batch, settings["gpu_warmup"], settings["gpu_iters"],
        )


def _classifier(settings, preprocessor, dtype=None):
    import keras_ast

    backbone = keras_ast.ASTBackbone(
        hidden_dim=settings["hidden_dim"],
        num_layers=settings["num_layers"],
        num_heads=settings["num_heads"],
        intermediate_dim=settings["intermediate_dim"],
        patch_size=settings["patch_size"],
        frequency_stride=settings["frequency_stride"],
        time_stride=settings["time_stride"],
        max_length=settings["max_length"],
        num_mel_bins=settings["num_mel_bins"],
        dtype=dtype,
    )
    return keras_ast.ASTClassifier(
        backbone,
        num_classes=settings["num_classes"],
        preprocessor=preprocessor,
        multi_label=True,
    )


def _converter(settings):
    import keras_ast

    return keras_ast.ASTAudioConverter(
        num_mel_bins=settings["num_mel_bins"],
        max_length=settings["max_length"],
    )


def _jax_forward(model):
    """`jax.jit` of the stateless call, weights passed as arguments."""
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(
            trainable, non_trainable, x, training=False
        )
        return outputs

    return lambda x: forward(trainable, non_trainable, x)


def _tf_function(fn, jit_compile):
    import tensorflow as tf

    return tf.function(fn, jit_compile=jit_compile)


def child_keras(backend, settings, sections, rec):
    import keras
    import numpy as np

    assert keras.config.backend() == backend, keras.config.backend()
    waveforms = make_waveforms(settings)
    batch = waveforms.shape[0]
    fe_args = (batch, settings["fe_warmup"], settings["fe_iters"])
    e2e_args = (batch, settings["e2e_warmup"], settings["e2e_iters"])

    if backend == "jax":
        import jax

        rec.info(device=str(jax.devices()[0]))
        if "features" in sections:
            converter = _converter(settings)
            jitted = jax.jit(lambda x: converter(x))
            rec.measure(
                "features", "jax.jit",
                "`jax.jit(lambda x: converter(x))`, numpy in, numpy out",
                lambda: np.asarray(jitted(waveforms)), *fe_args,
            )
        if "e2e" in sections:
            classifier = _measure_predict_on_batch(rec, settings, waveforms,
                                                   e2e_args)
            forward = _jax_forward(classifier)
            rec.measure(
                "e2e", "jax.jit",
                "`jax.jit` of `classifier.stateless_call(..., "
                "training=False)`",
                lambda: np.asarray(forward(waveforms)), *e2e_args,
            )
            del classifier, forward
        if "gpu" in sections:
            if jax.devices()[0].platform != "gpu":
                rec.skip("gpu", "jax.jit", "", "JAX sees no GPU")
            else:
                rec.info(gpu=jax.devices()[0].device_kind)
                gpu_batch = settings["gpu_batch_size"]
                classifier = _classifier(settings, None, "mixed_bfloat16")
                features = jax.device_put(make_features(settings, gpu_batch))
                forward = _jax_forward(classifier)
                rec.measure(
                    "gpu", "jax.jit",
                    "`jax.jit` of `stateless_call`, `mixed_bfloat16`, "
                    "float32 features on device",
                    lambda: forward(features).block_until_ready(),
                    gpu_batch, settings["gpu_warmup"], settings["gpu_iters"],
                )

    elif backend == "tensorflow":
        import tensorflow as tf

        rec.info(devices=[d.name for d in tf.config.list_logical_devices()])
        if "features" in sections:
            converter = _converter(settings)
            for jit_compile in (False, True):
                fn = _tf_function(lambda x: converter(x), jit_compile)
                rec.measure(
                    "features", f"tf.function(jit_compile={jit_compile})",
                    f"`tf.function(lambda x: converter(x), jit_compile="
                    f"{jit_compile})`, numpy in, numpy out",
                    lambda fn=fn: fn(tf.convert_to_tensor(waveforms)).numpy(),
                    *fe_args,
                )
        if "e2e" in sections:
            classifier = _measure_predict_on_batch(rec, settings, waveforms,
                                                   e2e_args)
            for jit_compile in (False, True):
                fn = _tf_function(
                    lambda x: classifier(x, training=False), jit_compile
                )
                rec.measure(
                    "e2e", f"tf.function(jit_compile={jit_compile})",
                    "`tf.function(lambda x: classifier(x, training=False), "
                    f"jit_compile={jit_compile})`",
                    lambda fn=fn: fn(tf.convert_to_tensor(waveforms)).numpy(),
                    *e2e_args,
                )
            del classifier
        if "gpu" in sections:
            if not tf.config.list_logical_devices("GPU"):
                rec.skip("gpu", "tf.function", "", "TensorFlow sees no GPU")
            else:
                gpu_batch = settings["gpu_batch_size"]
                classifier = _classifier(settings, None, "mixed_bfloat16")
                with tf.device("/GPU:0"):
                    features = tf.constant(make_features(settings, gpu_batch))
                for jit_compile in (False, True):
                    fn = _tf_function(
                        lambda x: classifier(x, training=False), jit_compile
                    )
                    rec.measure(
                        "gpu", f"tf.function(jit_compile={jit_compile})",
                        f"`tf.function(..., jit_compile={jit_compile})`, "
                        "`mixed_bfloat16`, float32 features on device",
                        lambda fn=fn: fn(features).numpy(),
                        gpu_batch, settings["gpu_warmup"],
                        settings["gpu_iters"],
                    )

    elif backend == "torch":
        import torch

        rec.info(torch_threads=torch.get_num_threads())
        feature_calls = [
            ("features", "eager",
             "`converter(torch.from_numpy(x))` under `torch.no_grad()`, "
             "numpy out", lambda converter: converter),
            ("features_compile", "torch.compile",
             "`torch.compile(lambda x: converter(x))` under "
             "`torch.no_grad()`",
             lambda converter: torch.compile(lambda x: converter(x))),
        ]
        for section, name, description, wrap in feature_calls:
            if section not in sections:
                continue
            call = wrap(_converter(settings))

            def run_features(call=call):
                with torch.no_grad():
                    out = call(torch.from_numpy(waveforms))
                return out.cpu().numpy()

            rec.measure("features", name, description, run_features,
                        *fe_args)
        if "e2e" in sections:
            classifier = _measure_predict_on_batch(rec, settings, waveforms,
                                                   e2e_args)

            def run_e2e():
                with torch.no_grad():
                    out = classifier(torch.from_numpy(waveforms),
                                     training=False)
                return out.cpu().numpy()

            rec.measure(
                "e2e", "eager",
                "`classifier(x, training=False)` under `torch.no_grad()`",
                run_e2e, *e2e_args,
            )
            del classifier
        if "gpu" in sections:
            if not torch.cuda.is_available():
                rec.skip("gpu", "eager", "", "torch sees no CUDA device")
            else:
                gpu_batch = settings["gpu_batch_size"]
                classifier = _classifier(settings, None, "mixed_bfloat16")
                features = torch.from_numpy(
                    make_features(settings, gpu_batch)
                ).to("cuda")

                def run_gpu():
                    with torch.no_grad():
                        out = classifier(features, training=False)
                    torch.cuda.synchronize()
                    return out

                rec.measure(
                    "gpu", "eager",
                    "`classifier(x, training=False)` under `torch.no_grad()`"
                    ", `mixed_bfloat16`, float32 features on device",
                    run_gpu, gpu_batch, settings["gpu_warmup"],
                    settings["gpu_iters"],
                )


def child_main(args):
    settings = json.loads(args.settings)
    sections = args.sections.split(",")
    rec = Recorder(args.child, args.result_file)
    if args.child == "reference":
        child_reference(settings, sections, rec)
    else:
        child_keras(args.child, settings, sections, rec)


# --------------------------------------------------------------------------
# Parent: runs the children, then writes Markdown.
# --------------------------------------------------------------------------


def run_child(role, sections, settings, gpu, timeout, verbose):
    """Runs one child; returns its results (partial ones on failure)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if role != "reference":
        env["KERAS_BACKEND"] = role
    if not gpu:
        # The CPU sections run on the CPU even on a machine with a GPU.
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    handle, result_file = tempfile.mkstemp(prefix=f"ast-bench-{role}-",
                                           suffix=".json")
    os.close(handle)
    command = [
        sys.executable, str(Path(__file__).resolve()),
        "--child", role, "--sections", ",".join(sections),
        "--settings", json.dumps(settings), "--result-file", result_file,
    ]
    log(f"start {role}: {', '.join(sections)} "
        f"({'GPU' if gpu else 'CPU'}, timeout {timeout} s)")
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
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
    try:
        with open(result_file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {"role": role, "info": {}, "results": {}}
    finally:
        for path in (result_file, f"{result_file}.tmp"):
            if os.path.exists(path):
                os.remove(path)
    data["wall_s"] = time.perf_counter() - start
    if problem:
        data["problem"] = problem
        log(f"{role} {problem}; last output:\n" + "".join(tail))
    return data


def gpu_visible():
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


def warn_if_busy(machine):
    """Warns when other work loads the cores: it skews the figures."""
    try:
        load_1min = os.getloadavg()[0]
    except OSError:
        load_1min = 0.0
    if load_1min > 0.5 * machine["usable_cores"]:
        log(f"warning: load average {load_1min:.2f} on "
            f"{machine['usable_cores']} cores; other work skews the figures")


def machine_info(gpu_name):
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    except (OSError, ValueError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions = {}
    for package in ("keras", "keras-ast", "jax", "jaxlib", "tensorflow",
                    "torch", "transformers", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = ""
    return {
        "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
        "memory": memory, "gpu": gpu_name or "none",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions, "commit": commit, "load": load,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------
# Markdown.
# --------------------------------------------------------------------------

INTRO = """\
# Benchmarks: keras_ast against Hugging Face `transformers`

`benchmarks/run_benchmarks.py` measures the throughput (clips per second) of
keras_ast against the Hugging Face `transformers` implementation of the Audio
Spectrogram Transformer, on each Keras backend (JAX, TensorFlow, PyTorch), and
reports the **ratio keras_ast / reference**: above 1 means keras_ast is
faster. Absolute figures drift between machines and runs; only figures from
the same run are compared.

## What is measured

Inputs are {clip_desc} clips of random noise × 0.1 (float32, 16 kHz); weights
are random (speed does not depend on them). Each implementation runs in its
own subprocess (the Keras backend is fixed per process); the CPU sections run
with any GPU hidden. Each measurement warms up first (the first call compiles;
its time is reported as "first call"), then times several calls; the figure is
the batch size over the median time of one call. Each call waits for its
result (`np.asarray`, `.numpy()`, `block_until_ready`, `cuda.synchronize`).
Run it on an otherwise idle machine: other work on the cores slows the
multi-threaded runs unevenly (PyTorch's CPU kernels most); the load average
at the start and end is recorded below.

1. **Feature extraction** (CPU), waveforms → normalised log-mel features,
   batch of {batch} clips, numpy in and numpy out.
   Reference: `transformers.ASTFeatureExtractor()` on its numpy path
   (`fe(list_of_clips, sampling_rate=16000, return_tensors="np")`).
   keras_ast: `ASTAudioConverter()` compiled the way a pipeline would run it:
   `jax.jit` of a function calling the layer (JAX); `tf.function` with
   `jit_compile=False` and `True`, the better one counts (TensorFlow); an
   eager call under `torch.no_grad()`, and `torch.compile` where it compiles
   within the time limit (PyTorch).
2. **End to end** (CPU), waveforms → logits, batch of {batch} clips, model
   {model_desc}.
   Reference: `ASTFeatureExtractor` + `ASTForAudioClassification` with
   `attn_implementation="sdpa"`, float32, under `torch.no_grad()`.
   keras_ast: `ASTClassifier(ASTBackbone(), num_classes=527,
   preprocessor=ASTAudioConverter(), multi_label=True)` called through
   `predict_on_batch(waveforms)` and through the backend's own compiled call
   (`jax.jit` of `stateless_call`; `tf.function(classifier(x,
   training=False))` with and without XLA; on PyTorch an eager call under
   `torch.no_grad()`); the fastest counts.
3. **GPU, model forward only** (only when a GPU is visible): features already
   on the device, batch {gpu_batch}, bfloat16. Reference:
   `ASTForAudioClassification` (sdpa) with bfloat16 weights and features.
   keras_ast: the classifier without preprocessor under the `mixed_bfloat16`
   policy (float32 features, cast inside; LayerNorms and head in float32),
   `jax.jit` / `tf.function` (with and without XLA) / eager torch.
   TFLOP/s counts {gflop:.0f} GFLOP per clip (matrix work of the encoder and
   patch embedding).

## How to run

```
. .venv/bin/activate
python benchmarks/run_benchmarks.py          # full run: rewrites this file
python benchmarks/run_benchmarks.py --quick  # smoke test: benchmarks/results-quick.md
```

The full run takes roughly 10–20 minutes on a 2-core CPU; the end-to-end
section dominates. Flags:

| flag | effect |
|---|---|
| `--quick` | tiny sizes (1 s clips, 128 frames, 2 layers of width 64) to check the plumbing; writes `benchmarks/results-quick.md` unless `--output` |
| `--device auto\\|cpu\\|gpu` | `auto` (default) adds the GPU section when `nvidia-smi` lists a GPU; `cpu` never; `gpu` always |
| `--backends jax,tensorflow,torch` | the Keras backends to measure |
| `--sections features,e2e,gpu` | the sections to run (`gpu` also needs a GPU, see `--device`) |
| `--batch-size N`, `--clip-seconds S` | batch and clip length of the CPU sections (4, 10 s) |
| `--fe-warmup N`, `--fe-iters N` | warm-up and timed calls, feature extraction (2, 10) |
| `--e2e-warmup N`, `--e2e-iters N` | warm-up and timed calls, end to end (1, 2) |
| `--gpu-batch-size N`, `--gpu-warmup N`, `--gpu-iters N` | the GPU section (64, 3, 20) |
| `--no-torch-compile` | skip the `torch.compile` attempt on the converter |
| `--compile-timeout S` | time allowed to the `torch.compile` attempt (300 s) |
| `--timeout S` | time allowed to each subprocess (3600 s) |
| `--output PATH` | where to write the Markdown |
| `--verbose` | show the subprocesses' whole output |
"""


def render_intro(settings):
    clip = settings["clip_seconds"]
    return INTRO.format(
        clip_desc=f"{clip:g} s ({int(round(clip * SAMPLING_RATE))} samples)",
        batch=settings["batch_size"],
        gpu_batch=settings["gpu_batch_size"],
        model_desc=(
            f"hidden {settings['hidden_dim']}, {settings['num_layers']} "
            f"layers, {settings['max_length']} frames, strides "
            f"{settings['frequency_stride']}/{settings['time_stride']}, "
            f"{settings['num_classes']} labels"
            + (" (the `ASTConfig()` AudioSet defaults)"
               if settings["hidden_dim"] == 768 else "")
        ),
        gflop=model_flops_per_clip(settings) / 1e9,
    )


def render_machine(machine, children, note=""):
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    threads = children.get("reference", {}).get("info", {}).get(
        "torch_threads")
    lines = [
        "## Machine",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        f"- Date: {machine['date']}; commit {machine['commit'] or '?'}",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['memory']} memory"
        + (f"; torch uses {threads} threads" if threads else ""),
        f"- GPU: {machine['gpu']}",
        f"- Python {machine['python']} on {machine['os']}",
        f"- {versions}",
        f"- Load average at start: {machine['load']}",
        "",
    ]
    return "\n".join(lines)


def best(entries):
    good = [e for e in entries if e.get("clips_per_s")]
    return max(good, key=lambda e: e["clips_per_s"]) if good else None


def render_section(title, section, children, backends, note="", flops=None):
    reference = children.get("reference", {}).get("results", {}).get(
        section, [])
    ref = best(reference)
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    head = "| implementation | how it is called | clips/s |"
    rule = "|---|---|---:|"
    if flops:
        head += " TFLOP/s |"
        rule += "---:|"
    head += " ratio vs reference | first call (s) | timed calls (s) |"
    rule += "---:|---:|---|"
    lines += [head, rule]
    summary = []
    for role in ("reference",) + tuple(backends):
        child = children.get(role, {})
        entries = child.get("results", {}).get(section, [])
        if not entries:
            reason = child.get("problem", "not run")
            lines.append(f"| {role} | — | {reason} |" + (" |" if flops else "")
                         + " | | |")
            continue
        for entry in entries:
            name = role if role == "reference" else f"keras_ast {role}"
            how = entry.get("how") or entry["label"]
            if "skipped" in entry or "error" in entry:
                why = entry.get("skipped") or "failed: " + entry["error"]
                why = why.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {name} ({entry['label']}) | {how} | "
                             f"{why} |" + (" |" if flops else "") + " | | |")
                continue
            rate = entry["clips_per_s"]
            row = f"| {name} | {how} | {fmt_rate(rate)} |"
            if flops:
                row += f" {rate * flops / 1e12:.0f} |"
            ratio = f"{rate / ref['clips_per_s']:.2f}" if ref else "—"
            if role != "reference" and entry is best(entries):
                ratio = f"**{ratio}**"
            row += (f" {ratio} | {entry['first_s']:.2f} | "
                    f"{', '.join(f'{t:.3f}' for t in entry['times_s'])} |")
            lines.append(row)
        if role != "reference":
            top = best(entries)
            if top and ref:
                summary.append((role, top, top["clips_per_s"]
                                / ref["clips_per_s"]))
        if child.get("problem"):
            lines.append(f"| {role} | subprocess {child['problem']} | | "
                         + ("| " if flops else "") + "| | |")
    lines.append("")
    if summary:
        lines.append("Best call per backend, keras_ast / reference: "
                     + "; ".join(f"{role} ({top['label']}) **{ratio:.2f}**"
                                 for role, top, ratio in summary) + ".")
        role, top, ratio = max(summary, key=lambda s: s[2])
        lines.append(f"Best backend: **{role}** ({top['label']}), "
                     f"**{ratio:.2f}×** the reference.")
        lines.append("")
    elif not ref:
        lines += ["No reference figure: no ratio.", ""]
    return "\n".join(lines), summary


def render_results(settings, children, backends, sections, gpu_name, mode):
    parts = [f"## Results ({mode})", ""]
    parts.append(
        f"Ratios are keras_ast clips/s ÷ reference clips/s from this run "
        f"(bold: the backend's best call). Timed calls: seconds per batch. "
        f"Feature extraction: {settings['fe_warmup']} warm-up + "
        f"{settings['fe_iters']} timed calls; end to end: "
        f"{settings['e2e_warmup']} + {settings['e2e_iters']}; GPU: "
        f"{settings['gpu_warmup']} + {settings['gpu_iters']}.")
    parts.append("")
    if settings.get("quick"):
        parts += [
            "**Smoke test only.** With these tiny sizes fixed per-call "
            "overheads dominate: the figures and ratios below show that the "
            "script works, not how fast anything is.", ""]
    summaries = {}
    if "features" in sections:
        text, summaries["features"] = render_section(
            f"1. Feature extraction, CPU, batch {settings['batch_size']}",
            "features", children, backends)
        parts.append(text)
    if "e2e" in sections:
        text, summaries["e2e"] = render_section(
            f"2. End to end, waveforms → logits, CPU, batch "
            f"{settings['batch_size']}, float32", "e2e", children, backends)
        parts.append(text)
    if "gpu" in sections:
        text, summaries["gpu"] = render_section(
            f"3. Model forward only, GPU ({gpu_name}), bfloat16, batch "
            f"{settings['gpu_batch_size']}, features on device", "gpu",
            children, backends, flops=model_flops_per_clip(settings))
        parts.append(text)
    else:
        parts += ["### 3. Model forward only, GPU", "",
                  "Not measured: no GPU visible in this run.", ""]
    if any(summaries.values()):
        parts += ["### Summary: keras_ast / reference, best call per "
                  "backend", "",
                  "| section | " + " | ".join(backends) + " | best |",
                  "|---|" + "---:|" * (len(backends) + 1)]
        for section, summary in summaries.items():
            if not summary:
                continue
            by_role = {role: ratio for role, _, ratio in summary}
            cells = [f"{by_role[b]:.2f}" if b in by_role else "—"
                     for b in backends]
            top = max(summary, key=lambda s: s[2])
            parts.append(f"| {section} | " + " | ".join(cells)
                         + f" | {top[0]} {top[2]:.2f} |")
        parts.append("")
    return "\n".join(parts)


def placeholder_results():
    return "\n".join([
        "## Results",
        "",
        PLACEHOLDER_MARK,
        "Not yet measured: the full run has not been made on this machine. "
        "Run `python benchmarks/run_benchmarks.py` to fill this section.",
        "",
        "| section | jax | tensorflow | torch | best |",
        "|---|---:|---:|---:|---:|",
        "| features | not yet measured | | | |",
        "| e2e | not yet measured | | | |",
        "| gpu | not yet measured | | | |",
        "",
    ])


# --------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke test; writes "
                        "benchmarks/results-quick.md")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"),
                        default="auto",
                        help="auto: add the GPU section when nvidia-smi "
                        "lists a GPU; cpu: never; gpu: always")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="Keras backends to measure (comma separated)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="sections to run: features,e2e,gpu")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--clip-seconds", type=float)
    for name in ("fe", "e2e", "gpu"):
        parser.add_argument(f"--{name}-warmup", type=int,
                            help="warm-up calls (at least 1)")
        parser.add_argument(f"--{name}-iters", type=int, help="timed calls")
    parser.add_argument("--gpu-batch-size", type=int)
    parser.add_argument("--no-torch-compile", action="store_true",
                        help="skip the torch.compile attempt on the "
                        "converter")
    parser.add_argument("--compile-timeout", type=int, default=300,
                        help="seconds allowed to the torch.compile attempt")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="seconds allowed to each subprocess")
    parser.add_argument("--output", type=Path,
                        help="Markdown output (default README.md, or "
                        "results-quick.md with --quick)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the subprocesses' whole output")
    # Internal: a child process.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0

    settings = dict(QUICK if args.quick else FULL, quick=args.quick)
    for key in ("batch_size", "clip_seconds", "fe_warmup", "fe_iters",
                "e2e_warmup", "e2e_iters", "gpu_batch_size", "gpu_warmup",
                "gpu_iters"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"Unknown backends {sorted(unknown)}.")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"Unknown sections {sorted(unknown)}.")

    gpu_name = None
    if "gpu" in sections and args.device != "cpu":
        gpu_name = gpu_visible()
        if gpu_name is None and args.device == "gpu":
            gpu_name = "requested with --device gpu"
    if gpu_name is None:
        sections = [s for s in sections if s != "gpu"]
    cpu_sections = [s for s in sections if s != "gpu"]

    machine = machine_info(gpu_name)
    warn_if_busy(machine)
    mode = "quick smoke test, tiny sizes" if args.quick else "full run"
    log(f"{mode}: sections {', '.join(sections) or 'none'}, backends "
        f"{', '.join(backends)}, GPU {gpu_name or 'none'}")
    started = time.perf_counter()

    # role -> merged child data (CPU and GPU runs of one role are merged).
    children = {}

    def merge(role, data):
        merged = children.setdefault(
            role, {"role": role, "info": {}, "results": {}})
        merged["info"].update(data.get("info", {}))
        for section, entries in data.get("results", {}).items():
            merged["results"].setdefault(section, []).extend(entries)
        if data.get("problem"):
            merged["problem"] = "; ".join(
                p for p in (merged.get("problem"), data["problem"]) if p)

    for role in ["reference"] + backends:
        if cpu_sections:
            merge(role, run_child(role, cpu_sections, settings, False,
                                  args.timeout, args.verbose))
        if (role == "torch" and "features" in cpu_sections
                and not args.no_torch_compile):
            data = run_child(role, ["features_compile"], settings, False,
                             args.compile_timeout, args.verbose)
            if data.get("problem") and not data["results"].get("features"):
                data["results"]["features"] = [{
                    "label": "torch.compile",
                    "how": "`torch.compile(lambda x: converter(x))`",
                    "skipped": f"skipped: the attempt {data['problem']}",
                }]
                data.pop("problem")
            merge(role, data)
        if "gpu" in sections:
            merge(role, run_child(role, ["gpu"], settings, True,
                                  args.timeout, args.verbose))

    elapsed = time.perf_counter() - started
    text = "\n".join([
        render_intro(settings),
        render_machine(machine, children),
        render_results(settings, children, backends, sections,
                       gpu_name, mode),
        f"Whole run: {elapsed / 60:.1f} min; load average at the end: "
        f"{machine_info(gpu_name)['load']}.",
        "",
    ])
    output = args.output or (QUICK_OUTPUT if args.quick else README)
    output.write_text(text)
    log(f"wrote {output}")
    if args.quick and args.output is None:
        # The README is kept for the full run; it must exist and describe
        # the method even before one.
        if not README.exists() or PLACEHOLDER_MARK in README.read_text():
            README.write_text("\n".join([
                render_intro(dict(FULL)),
                render_machine(machine, {}, note=(
                    "The machine this file was written on (no full run "
                    "yet); the full run rewrites this section.")),
                placeholder_results(),
            ]))
            log(f"wrote {README} (method, results not yet measured)")
    print(render_results(settings, children, backends, sections, gpu_name,
                         mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
