"""The Markdown of run_benchmarks.py: method, machine and results sections.

`benchmarks/README.md` is this module's output (a full run rewrites it);
`children` below is `{role: {"info", "results", "problem"}}` as the child
processes recorded it (see `measure.Recorder`).
"""

import statistics

from measure import fmt_rate, fmt_times
from workload import SAMPLING_RATE, model_flops_per_clip

PLACEHOLDER_MARK = "<!-- results: not yet measured -->"

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
   keras_ast: `ASTAudioConverter()` called eagerly on the numpy batch, as
   people call a feature extractor (**what a user gets**: on JAX and
   TensorFlow the layer compiles its own computation for eager calls, once
   per batch size; PyTorch runs it op by op), then compiled the way a
   pipeline would run it: `jax.jit` of a function calling the layer (JAX);
   `tf.function` with `jit_compile=False` and `True` (TensorFlow);
   `torch.compile` where it compiles within the time limit (PyTorch). The
   best call counts in the summary; the eager row is the user's figure.
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

   The machine's speed drifts over minutes, so the reference's feature
   extraction and end to end run first and again after every backend; the
   ratios are against the median of both runs' timed calls.

   2b. **Paired**: the same `predict_on_batch` and the reference's end to
   end in one process per backend, a call of each in turn, so that drift
   cannot favour either side; the ratio is the median of the rounds'.

   2c. **Paired, bfloat16**: the same, both sides in bfloat16 on the CPU's
   matrix units (AMX, AVX512-BF16): keras_ast's classifier under
   `mixed_bfloat16` (features, LayerNorms and softmax in float32), the
   reference's model under `torch.autocast("cpu", torch.bfloat16)`. Not in
   the float32 verdict.
3. **Memory** (CPU): peak resident memory of one call on {memory_batch}
   clips, each implementation in a fresh process: the reference's extractor
   and model on all clips at once, keras_ast's
   `classifier.predict(waveforms, batch_size={memory_batch})`. "Added" is
   the peak minus the memory held before the call (libraries and weights).
4. **GPU, model forward only** (only when a GPU is visible): features already
   on the device, batch {gpu_batch}, bfloat16. Reference:
   `ASTForAudioClassification` (sdpa) with bfloat16 weights and features.
   keras_ast: the classifier without preprocessor under the `mixed_bfloat16`
   policy (float32 features, cast inside; LayerNorms and head in float32),
   `jax.jit` / `tf.function` (with and without XLA) / eager torch.
   TFLOP/s counts {gflop:.0f} GFLOP per clip (matrix work of the encoder and
   patch embedding). The same GPU child then measures:
   - **4b, end to end on the GPU**: waveforms on the device → logits, the
     converter inside the model (float32) and the encoder in
     `mixed_bfloat16`, through the same calls. Reference: its extractor on
     the host (numpy; it has no device path), then the bfloat16 model;
   - the converter alone through the same calls, as a share of the forward;
   - the attention kernels each forward runs (cuDNN's fused attention in
     the compiled HLO for JAX and TensorFlow with XLA, the sdpa kernels in
     PyTorch's profile);
   - encoded files: {files} FLAC files through `keras-ast classify`'s path
     (decoding ahead on threads), the model's share of that time, and
     `nvidia-smi`'s utilisation samples meanwhile.

## How to run

```
. .venv/bin/activate
python benchmarks/run_benchmarks.py          # full run: rewrites this file
python benchmarks/run_benchmarks.py --quick  # smoke test: benchmarks/results-quick.md
python benchmarks/run_benchmarks.py --sections gpu --output benchmarks/results-gpu.md  # GPU alone
```

The full run takes roughly 10–20 minutes on a 2-core CPU; the end-to-end
section dominates. Flags:

| flag | effect |
|---|---|
| `--quick` | tiny sizes (1 s clips, 128 frames, 2 layers of width 64) to check the plumbing; writes `benchmarks/results-quick.md` unless `--output` |
| `--device auto\\|cpu\\|gpu` | `auto` (default) adds the GPU section when `nvidia-smi` lists a GPU; `cpu` never; `gpu` always |
| `--backends jax,tensorflow,torch` | the Keras backends to measure |
| `--sections features,e2e,paired,paired_bf16,memory,gpu` | the sections to run (`gpu` also needs a GPU, see `--device`; `paired` is 2b, `paired_bf16` 2c) |
| `--batch-size N`, `--clip-seconds S` | batch and clip length of the CPU sections (4, 10 s) |
| `--fe-warmup N`, `--fe-iters N` | warm-up and timed calls, feature extraction (2, 10) |
| `--e2e-warmup N`, `--e2e-iters N` | warm-up and timed calls, end to end (1, 5) |
| `--memory-batch-size N` | clips of the memory section's call (32) |
| `--gpu-batch-size N`, `--gpu-warmup N`, `--gpu-iters N` | the GPU section (64, 3, 20) |
| `--no-torch-compile` | skip the `torch.compile` attempt on the converter |
| `--compile-timeout S` | time allowed to the `torch.compile` attempt (300 s) |
| `--timeout S` | time allowed to each subprocess (3600 s) |
| `--output PATH` | where to write the Markdown |
| `--verbose` | show the subprocesses' whole output |

The code, in `benchmarks/`: `run_benchmarks.py` (command line, one
subprocess per implementation and backend, this file), `workload.py` (sizes
and inputs), `reference.py` (the `transformers` measurements), `ours.py`
(keras_ast's), `backends.py` (the table of what differs between JAX,
TensorFlow and PyTorch: compiling, placing on the GPU, waiting for a
result), `measure.py` (timing and recording, shared with
`input_pipeline.py` and `tagging.py`), `machine.py` (the "Machine" section)
and `report.py` (the Markdown). `input_pipeline.py` and `tagging.py` (below)
are entry points of their own, each writing its own section of this file.
"""


def render_intro(settings):
    clip = settings["clip_seconds"]
    return INTRO.format(
        clip_desc=f"{clip:g} s ({int(round(clip * SAMPLING_RATE))} samples)",
        batch=settings["batch_size"],
        gpu_batch=settings["gpu_batch_size"],
        files=4 * settings["gpu_batch_size"],
        memory_batch=settings["memory_batch_size"],
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


def reference_figure(entries):
    """The reference's best call; a call timed in more than one run (first
    and last in the run) counts the median of all its timed calls."""
    runs = {}
    for entry in entries:
        if entry.get("clips_per_s"):
            runs.setdefault(entry["how"], []).append(entry)
    figures = []
    for same in runs.values():
        if len(same) == 1:
            figures.append(same[0])
            continue
        times = [t for entry in same for t in entry["times_s"]]
        figures.append({"label": same[0]["label"], "runs": len(same),
                        "clips_per_s": same[0]["batch"]
                        / statistics.median(times)})
    return best(figures)


def _partial_row(cells, flops):
    """A table row with only its first cells filled."""
    width = 7 if flops else 6
    return "| " + " | ".join(cells) + " |" + " |" * (width - len(cells))


def _entry_row(name, entry, ref, flops, bold):
    """One measurement's row: rate, TFLOP/s, ratio, first and timed calls."""
    how = entry.get("how") or entry["label"]
    if "skipped" in entry or "error" in entry:
        why = entry.get("skipped") or "failed: " + entry["error"]
        why = why.replace("|", "\\|").replace("\n", " ")
        return _partial_row([f"{name} ({entry['label']})", how, why], flops)
    rate = entry["clips_per_s"]
    row = f"| {name} | {how} | {fmt_rate(rate)} |"
    if flops:
        row += f" {rate * flops / 1e12:.0f} |"
    ratio = f"{rate / ref['clips_per_s']:.2f}" if ref else "—"
    if bold:
        ratio = f"**{ratio}**"
    return row + (f" {ratio} | {entry['first_s']:.2f} | "
                  f"{fmt_times(entry['times_s'])} |")


def _best_lines(summary):
    """The "best call per backend" and "best backend" sentences."""
    winner, top, ratio = max(summary, key=lambda s: s[2])
    per_backend = "; ".join(f"{role} ({entry['label']}) **{r:.2f}**"
                            for role, entry, r in summary)
    return [
        f"Best call per backend, keras_ast / reference: {per_backend}.",
        f"Best backend: **{winner}** ({top['label']}), "
        f"**{ratio:.2f}×** the reference.",
        "",
    ]


def render_section(title, section, children, backends, note="", flops=None):
    """One section's table; returns `(text, [(role, best entry, ratio)])`."""
    ref = reference_figure(children.get("reference", {}).get(
        "results", {}).get(section, []))
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
            lines.append(_partial_row([role, "—", reason], flops))
            continue
        top = best(entries)
        for entry in entries:
            name = (entry["label"] if role == "reference"
                    else f"keras_ast {role}")
            bold = role != "reference" and entry is top
            lines.append(_entry_row(name, entry, ref, flops, bold))
        if role != "reference" and top and ref:
            summary.append((role, top, top["clips_per_s"]
                            / ref["clips_per_s"]))
        if child.get("problem"):
            lines.append(_partial_row(
                [role, f"subprocess {child['problem']}"], flops))
    lines.append("")
    if ref and ref.get("runs"):
        lines += [f"The reference ran first and again last in the run; the "
                  f"ratios are against the median of its "
                  f"{ref['runs']} runs' timed calls together "
                  f"({fmt_rate(ref['clips_per_s'])} clips/s).", ""]
    if summary:
        lines += _best_lines(summary)
    elif not ref:
        lines += ["No reference figure: no ratio.", ""]
    return "\n".join(lines), summary


PAIRED_TITLES = {
    "paired": "2b. End to end, in turn with the reference in one process",
    "paired_bf16": "2c. End to end in bfloat16, in turn with the reference "
                   "in bfloat16",
}


def render_paired(children, backends, section="paired"):
    """A paired end to end table (`section`: "paired" or "paired_bf16");
    returns `(text, [(role, entry, ratio)])`."""
    lines = [f"### {PAIRED_TITLES[section]}", "",
             "Each round times the reference's call and then keras_ast's, in "
             "the backend's process: both calls of a round see the machine "
             "in the same state. Ratio: the median over the rounds of "
             "reference time ÷ keras_ast time.", "",
             "| backend | how it is called | keras_ast (s) | reference (s) |"
             " ratio (median of rounds) | ratio of each round |",
             "|---|---|---|---|---:|---|"]
    summary = []
    for role in backends:
        child = children.get(role, {})
        for entry in child.get("results", {}).get(section, []):
            if "error" in entry:
                lines.append(f"| {role} | {entry['how']} | failed: "
                             f"{entry['error']} | | | |")
                continue
            ratios = ", ".join(f"{r:.2f}" for r in entry["ratios"])
            lines.append(
                f"| {role} | {entry['how']} | {fmt_times(entry['times_s'])} "
                f"| {fmt_times(entry['reference_times_s'])} | "
                f"**{entry['ratio']:.2f}** | {ratios} |")
            summary.append((role, entry, entry["ratio"]))
    lines.append("")
    return "\n".join(lines), summary


def render_memory(children, backends, batch):
    """The memory section: peak and added resident memory per call."""
    lines = [f"### 3. Memory, CPU, one call on {batch} clips, float32", "",
             "| implementation | how it is called | peak MB | before the "
             "call MB | added by the call MB | added vs reference |",
             "|---|---|---:|---:|---:|---:|"]
    entries = {role: (children.get(role, {}).get("results", {})
                      .get("memory") or [None])[0]
               for role in ("reference",) + tuple(backends)}
    ref = entries["reference"]
    for role, entry in entries.items():
        name = role if role == "reference" else f"keras_ast {role}"
        if entry is None or "peak_mb" not in entry:
            why = (entry or {}).get("error") or children.get(role, {}).get(
                "problem", "not run")
            lines.append(f"| {name} | — | {why} | | | |")
            continue
        ratio = (f"{entry['added_mb'] / ref['added_mb']:.2f}"
                 if ref and ref.get("added_mb") else "—")
        lines.append(f"| {name} | {entry['how']} | {entry['peak_mb']:.0f} | "
                     f"{entry['before_mb']:.0f} | {entry['added_mb']:.0f} | "
                     f"{ratio} |")
    lines.append("")
    return "\n".join(lines)


def render_gpu_notes(children, backends, gpu_batch):
    """The GPU section's lines beyond its tables: the attention kernels,
    the converter's cost beside the forward's, and encoded files."""
    lines = ["Attention kernels of the GPU forward (from the compiled HLO "
             "or PyTorch's profile):", ""]
    for role in ("reference",) + tuple(backends):
        info = children.get(role, {}).get("info", {})
        kernels = info.get("attention_gpu")
        lines.append(f"- {role}: " + (", ".join(f"`{k}`" for k in kernels)
                                      if kernels else "not recorded"))
    lines += ["", "The converter alone on the GPU (float32), its fastest "
              "call beside the fastest bfloat16 forward on features (the "
              "target: at most 10%):", ""]
    for role in backends:
        results = children.get(role, {}).get("results", {})
        conv = best(results.get("gpu_converter", []))
        call = best(results.get("gpu", []))
        if conv is None or call is None:
            lines.append(f"- {role}: not measured")
            continue
        alone, whole = (statistics.median(e["times_s"]) for e in (conv, call))
        lines.append(f"- {role}: {conv['label']} {alone * 1e3:.1f} ms a "
                     f"batch of {gpu_batch}, {alone / whole:.1%} of "
                     f"{call['label']}'s forward ({whole * 1e3:.1f} ms)")
    lines += ["", "Encoded files through `keras-ast classify`'s path "
              "(`decoded_files` + `label_files`: FLAC, decoded on threads "
              "ahead of the model), against the same clips already decoded "
              "through `classifier.classify`:", ""]
    for role in backends:
        entries = children.get(role, {}).get("results", {}).get(
            "gpu_files", [])
        if not entries:
            lines.append(f"- {role}: not measured")
        for entry in entries:
            if "error" in entry:
                lines.append(f"- {role}: failed: {entry['error']}")
                continue
            samples = entry.get("gpu_busy_samples") or []
            busy = (f"; `nvidia-smi` utilisation {statistics.mean(samples):.0f}%"
                    f" (median {statistics.median(samples):.0f}%, "
                    f"{len(samples)} samples)" if samples else "")
            lines.append(
                f"- {role}: {entry['clips']} files in {entry['files_s']:.2f} s "
                f"({fmt_rate(entry['clips_per_s'])} clips/s); decoded clips "
                f"took {entry['model_s']:.2f} s, so the model is "
                f"{entry['model_share']:.0%} of the files' time{busy}; "
                f"{entry['skipped']} skipped")
    lines.append("")
    return "\n".join(lines)


def render_summary(summaries, backends):
    """keras_ast / reference, best call per backend, one row per section."""
    parts = ["### Summary: keras_ast / reference, best call per backend", "",
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
    return parts


def render_results(settings, children, backends, sections, gpu_name, mode):
    """The "## Results" section: one table per section and the summary."""
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
    titles = {
        "features": f"1. Feature extraction, CPU, batch "
                    f"{settings['batch_size']}",
        "e2e": f"2. End to end, waveforms → logits, CPU, batch "
               f"{settings['batch_size']}, float32",
        "gpu": f"4. Model forward only, GPU ({gpu_name}), bfloat16, batch "
               f"{settings['gpu_batch_size']}, features on device",
        "gpu_e2e": f"4b. End to end on the GPU ({gpu_name}), waveforms → "
                   f"logits, bfloat16, batch {settings['gpu_batch_size']}",
    }
    summaries = {}
    for section in ("features", "e2e", "paired", "paired_bf16", "memory",
                    "gpu"):
        if section not in sections:
            continue
        if section.startswith("paired"):
            text, summaries[section] = render_paired(children, backends,
                                                     section)
            parts.append(text)
            continue
        if section == "memory":
            parts.append(render_memory(children, backends,
                                       settings["memory_batch_size"]))
            continue
        flops = model_flops_per_clip(settings) if section == "gpu" else None
        text, summaries[section] = render_section(
            titles[section], section, children, backends, flops=flops)
        parts.append(text)
        if section == "gpu":
            text, summaries["gpu_e2e"] = render_section(
                titles["gpu_e2e"], "gpu_e2e", children, backends)
            parts += [text, render_gpu_notes(children, backends,
                                             settings["gpu_batch_size"])]
    if "gpu" not in sections:
        parts += ["### 4. Model forward only, GPU", "",
                  "Not measured: no GPU visible in this run.", ""]
    if any(summaries.values()):
        parts += render_summary(summaries, backends)
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

