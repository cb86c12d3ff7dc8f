"""The results of run_benchmarks.py as a results file (a JSON object).

`children` below is `{role: {"info", "results", "problem"}}` as the child
processes recorded it (see `measure.Recorder`). `results_file` returns the
object render.py prints: the machine, the tables (one per section, numbers
as numbers), the ratios keras_ast / reference and the raw measurements.
"""

import statistics

from workload import model_flops_per_clip


def _sig(value, digits=3):
    """`value` to `digits` significant figures (an int from 100 up)."""
    value = float(f"{value:.{digits}g}")
    return round(value) if value >= 100 else value


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
        times = [t for entry in same for t in entry["times_s"]]
        figures.append({"label": same[0]["label"], "runs": len(same),
                        "clips_per_s": same[0]["batch"]
                        / statistics.median(times)})
    return best(figures)


def _problem(entry):
    return entry.get("skipped") or "failed: " + entry.get("error", "?")


def section_table(title, section, children, backends, flops=None):
    """Clips/s per call, ratio to the reference; `(table, {role: ratio})`."""
    ref = reference_figure(children.get("reference", {}).get(
        "results", {}).get(section, []))
    columns = (["implementation", "how it is called", "clips/s"]
               + (["TFLOP/s"] if flops else [])
               + ["ratio vs reference", "first call (s)", "timed calls (s)"])
    rows, ratios = [], {}
    for role in ("reference",) + tuple(backends):
        child = children.get(role, {})
        name = "reference" if role == "reference" else f"keras_ast {role}"
        entries = child.get("results", {}).get(section, [])
        if not entries:
            rows.append([name, None, child.get("problem", "not run")])
        for entry in entries:
            if "clips_per_s" not in entry:
                rows.append([f"{name} ({entry['label']})", entry.get("how"),
                             _problem(entry)])
                continue
            rate = entry["clips_per_s"]
            ratio = round(rate / ref["clips_per_s"], 2) if ref else None
            rows.append(
                [entry["label"] if role == "reference" else name,
                 entry.get("how") or entry["label"], _sig(rate)]
                + ([round(rate * flops / 1e12)] if flops else [])
                + [ratio, round(entry["first_s"], 2),
                   [round(t, 3) for t in entry["times_s"]]])
            if role != "reference" and ratio is not None:
                ratios[role] = max(ratios.get(role, 0.0), ratio)
    table = {"title": title, "columns": columns, "rows": rows}
    if ref and ref["runs"] > 1:
        table["reference_clips_per_s"] = _sig(ref["clips_per_s"])
    return table, ratios


def paired_table(title, section, children, backends):
    """Rounds in turn with the reference; ratio = median of the rounds'."""
    rows, ratios = [], {}
    for role in backends:
        for entry in children.get(role, {}).get("results", {}).get(
                section, []):
            if "error" in entry:
                rows.append([role, entry.get("how"), _problem(entry)])
                continue
            rows.append([role, entry["how"],
                         [round(t, 3) for t in entry["times_s"]],
                         [round(t, 3) for t in entry["reference_times_s"]],
                         round(entry["ratio"], 2),
                         [round(r, 2) for r in entry["ratios"]]])
            ratios[role] = round(entry["ratio"], 2)
    return {"title": title, "rows": rows, "columns": [
        "backend", "how it is called", "keras_ast (s)", "reference (s)",
        "ratio (median of rounds)", "ratio of each round"]}, ratios


def memory_table(title, children, backends):
    """Peak and added resident memory of one call, added vs reference."""
    entries = {role: (children.get(role, {}).get("results", {})
                      .get("memory") or [{}])[0]
               for role in ("reference",) + tuple(backends)}
    ref_added = entries["reference"].get("added_mb")
    rows = []
    for role, entry in entries.items():
        name = role if role == "reference" else f"keras_ast {role}"
        if "peak_mb" not in entry:
            rows.append([name, None, entry.get("error") or children.get(
                role, {}).get("problem", "not run")])
            continue
        rows.append([name, entry["how"], round(entry["peak_mb"]),
                     round(entry["before_mb"]), round(entry["added_mb"]),
                     round(entry["added_mb"] / ref_added, 2)
                     if ref_added else None])
    return {"title": title, "rows": rows, "columns": [
        "implementation", "how it is called", "peak MB",
        "before the call MB", "added by the call MB", "added vs reference"]}


def gpu_notes(children, backends):
    """The GPU child's attention kernels, converter share and files."""
    notes = []
    for role in ("reference",) + tuple(backends):
        kernels = children.get(role, {}).get("info", {}).get("attention_gpu")
        notes.append(f"Attention kernels of the GPU forward, {role}: "
                     + (", ".join(kernels) if kernels else "not recorded"))
    for role in backends:
        results = children.get(role, {}).get("results", {})
        conv = best(results.get("gpu_converter", []))
        call = best(results.get("gpu", []))
        if conv and call:
            alone, whole = (statistics.median(e["times_s"])
                            for e in (conv, call))
            notes.append(
                f"The converter alone on the GPU, {role}: {conv['label']} "
                f"{alone * 1e3:.1f} ms a batch, {alone / whole:.1%} of "
                f"{call['label']}'s bfloat16 forward ({whole * 1e3:.1f} ms)")
        for entry in results.get("gpu_files", []):
            if "error" in entry:
                notes.append(f"Encoded files, {role}: failed: "
                             f"{entry['error']}")
                continue
            samples = entry.get("gpu_busy_samples") or []
            busy = (f"; nvidia-smi utilisation {statistics.mean(samples):.0f}"
                    f"% over {len(samples)} samples" if samples else "")
            notes.append(
                f"Encoded files through `keras-ast classify`'s path, {role}: "
                f"{entry['clips']} FLAC files in {entry['files_s']:.2f} s "
                f"({_sig(entry['clips_per_s'])} clips/s); the model is "
                f"{entry['model_share']:.0%} of that time{busy}; "
                f"{entry['skipped']} skipped")
    return notes


def results_file(settings, children, backends, sections, gpu_name):
    """Tables, ratios and notes of one run (machine etc. added by caller)."""
    batch = settings["batch_size"]
    gpu_batch = settings["gpu_batch_size"]
    tables, summary, notes = [], {}, []
    if settings.get("quick"):
        notes.append("Smoke test only: with these tiny sizes fixed per-call "
                     "overheads dominate; the figures show that the script "
                     "works, not how fast anything is.")
    titles = {
        "features": f"1. Feature extraction, CPU, batch {batch}",
        "e2e": f"2. End to end, waveforms → logits, CPU, batch {batch}, "
               f"float32",
        "paired": "2b. End to end, in turn with the reference in one "
                  "process",
        "paired_bf16": "2c. End to end in bfloat16, in turn with the "
                       "reference in bfloat16",
        "memory": f"3. Memory, CPU, one call on "
                  f"{settings['memory_batch_size']} clips, float32",
        "gpu": f"4. Model forward only, GPU ({gpu_name}), bfloat16, batch "
               f"{gpu_batch}, features on device",
        "gpu_e2e": f"4b. End to end on the GPU ({gpu_name}), waveforms → "
                   f"logits, bfloat16, batch {gpu_batch}",
    }
    for section in ("features", "e2e", "paired", "paired_bf16", "memory",
                    "gpu", "gpu_e2e"):
        if section not in sections and not (
                section == "gpu_e2e" and "gpu" in sections):
            continue
        if section == "memory":
            tables.append(memory_table(titles[section], children, backends))
            continue
        if section.startswith("paired"):
            table, ratios = paired_table(titles[section], section, children,
                                         backends)
        else:
            flops = (model_flops_per_clip(settings) if section == "gpu"
                     else None)
            table, ratios = section_table(titles[section], section,
                                          children, backends, flops)
        tables.append(table)
        if ratios:
            summary[section] = ratios
    if "gpu" in sections:
        notes += gpu_notes(children, backends)
    if summary:
        tables.append({
            "title": "Summary: keras_ast / reference, best call per backend",
            "columns": ["section"] + list(backends),
            "rows": [[section] + [ratios.get(b) for b in backends]
                     for section, ratios in summary.items()]})
    return {"tables": tables, "notes": notes, "summary": summary}
