"""keras_ast's measurements, in a child process of one Keras backend.

Each section is one function; the backend-specific parts (compiling,
placing on the GPU, waiting for a result) come from `backends.BACKENDS`.
`run_tagging` is tagging.py's: `ASTClassifier.tag` over a long recording.
"""

from backends import BACKENDS
from workload import SAMPLING_RATE, make_features, make_waveforms
from workload import warmup_iters
from workload import measure_memory as record_memory

GPU_HOW = ", `mixed_bfloat16`, float32 features on device"
GPU_E2E_HOW = (", `mixed_bfloat16` (converter float32), float32 waveforms "
               "on device")


def make_converter(settings):
    import keras_ast

    return keras_ast.ASTAudioConverter(
        num_mel_bins=settings["num_mel_bins"],
        max_length=settings["max_length"],
    )


def make_classifier(settings, preprocessor, dtype=None):
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


def _cpu_run(backend, call, waveforms, host_input=False):
    """A call on the CPU: numpy in, numpy out."""
    to_input = (lambda x: x) if host_input else backend.to_input
    return lambda: backend.to_numpy(call(to_input(waveforms)))


def measure_features(rec, backend, settings, sections):
    """`ASTAudioConverter` through each of the backend's converter calls.

    `sections` picks them: "features", "features_compile" (torch.compile,
    run in a child of its own).
    """
    waveforms = make_waveforms(settings)
    for call in backend.converter_calls:
        if call.section not in sections:
            continue
        run = _cpu_run(backend, call.wrap(make_converter(settings)),
                       waveforms, call.host_input)
        rec.measure("features", call.label, call.how, run, len(waveforms),
                    *warmup_iters(settings, "features"))


def measure_e2e(rec, backend, settings):
    """Waveforms -> logits: `predict_on_batch`, then the compiled calls."""
    import numpy as np

    waveforms = make_waveforms(settings)
    timing = (len(waveforms), *warmup_iters(settings, "e2e"))
    classifier = make_classifier(settings, make_converter(settings))
    rec.measure(
        "e2e", "predict_on_batch", "`classifier.predict_on_batch(waveforms)`",
        lambda: np.asarray(classifier.predict_on_batch(waveforms)), *timing,
    )
    for call in backend.model_calls:
        run = _cpu_run(backend, call.wrap(classifier), waveforms)
        rec.measure("e2e", call.label, call.how_e2e, run, *timing)


def measure_paired(rec, backend, settings, bfloat16=False):
    """`predict_on_batch` and the reference's end to end, in turn.

    Both in this process (the reference is PyTorch on its own threads), a
    round at a time: the ratio of each round is immune to the machine's
    drift, which moves the separate processes' figures by 30-40%. With
    `bfloat16` (section "paired_bf16"), keras_ast's classifier is
    `mixed_bfloat16` and the reference's model runs under `torch.autocast`
    in bfloat16.
    """
    import numpy as np
    import reference

    waveforms = make_waveforms(settings)
    classifier = make_classifier(settings, make_converter(settings),
                                 "mixed_bfloat16" if bfloat16 else None)
    how = "`classifier.predict_on_batch(waveforms)`"
    if bfloat16:
        how += (" on a `mixed_bfloat16` classifier; the reference's model "
                "under `torch.autocast(\"cpu\", torch.bfloat16)`")
    rec.measure_pair(
        "paired_bf16" if bfloat16 else "paired", "predict_on_batch", how,
        lambda: np.asarray(classifier.predict_on_batch(waveforms)),
        reference.end_to_end_run(
            settings, reference.numpy_path_extractor(rec, settings),
            autocast=bfloat16),
        len(waveforms),
        *warmup_iters(settings, "e2e"),
    )


def measure_memory(rec, settings):
    """`classifier.predict(waveforms)` (batch 32) on a batch of clips."""
    waveforms = make_waveforms(settings, settings["memory_batch_size"])
    classifier = make_classifier(settings, make_converter(settings))
    record_memory(
        rec, "predict", "`classifier.predict(waveforms, batch_size="
        f"{len(waveforms)}, verbose=0)`",
        lambda: classifier.predict(waveforms, batch_size=len(waveforms),
                                   verbose=0))


def record_attention(rec, key, backend, classifier, x):
    """Records under `key` which attention kernels the forward runs."""
    try:
        kernels = backend.attention(classifier, x)
    except Exception as error:  # the record must not stop the timings
        kernels = [f"unknown ({type(error).__name__}: {error})"[:200]]
    rec.info(**{key: kernels})


def measure_gpu(rec, backend, settings):
    """On the GPU, `mixed_bfloat16`: the forward alone on features, end to
    end on waveforms (and the converter alone), and encoded files through
    `keras-ast classify`'s path; the attention kernels are recorded."""
    gpu = backend.gpu_name()
    if gpu is None:
        label, reason = backend.no_gpu
        rec.skip("gpu", label, "", reason)
        return
    rec.info(gpu=gpu)
    batch = settings["gpu_batch_size"]
    timing = (batch, *warmup_iters(settings, "gpu"))
    classifier = make_classifier(settings, None, "mixed_bfloat16")
    features = backend.to_device(make_features(settings, batch))
    for call in backend.model_calls:
        forward = call.wrap(classifier)
        rec.measure("gpu", call.label, call.how_gpu + GPU_HOW,
                    lambda forward=forward: backend.sync(forward(features)),
                    *timing)
    record_attention(rec, "attention_gpu", backend, classifier, features)

    waveforms = backend.to_device(make_waveforms(settings, batch))
    converter = make_converter(settings)
    classifier = make_classifier(settings, converter, "mixed_bfloat16")
    for call in backend.model_calls:
        run = call.wrap(classifier)
        rec.measure("gpu_e2e", call.label, call.how_gpu + GPU_E2E_HOW,
                    lambda run=run: backend.sync(run(waveforms)), *timing)
    for call in backend.converter_calls:
        if call.section != "features":  # torch.compile: minutes
            continue
        run = call.wrap(converter)
        rec.measure("gpu_converter", call.label,
                    f"{call.label}: the converter alone, float32 waveforms "
                    "on device",
                    lambda run=run: backend.sync(run(waveforms)), *timing)
    measure_files(rec, classifier, settings)


def measure_files(rec, classifier, settings):
    """`keras-ast classify`'s path on encoded files, against the model alone.

    FLAC files of the benchmark's clips go through `classifier.classify`
    (decoding ahead on threads, `keras_ast.inference.files`) with the GPU's
    batch size; the same clips, already decoded, through it too. The
    model's share of the wall time says whether decoding keeps up;
    `nvidia-smi`'s utilisation samples are recorded where it runs.
    """
    import os
    import tempfile
    import time

    import soundfile
    from machine import gpu_utilisation

    batch = settings["gpu_batch_size"]
    clips = make_waveforms(settings, 4 * batch)
    try:
        with tempfile.TemporaryDirectory() as folder:
            paths = [os.path.join(folder, f"{i:04d}.flac")
                     for i in range(len(clips))]
            for path, clip in zip(paths, clips):
                soundfile.write(path, clip, SAMPLING_RATE)
            classifier.classify(paths[:batch], batch_size=batch)
            with gpu_utilisation() as samples:
                start = time.perf_counter()
                labels, skipped = classifier.classify(
                    paths, batch_size=batch, skip_errors=True)
                files_s = time.perf_counter() - start
            results = [found for found in labels if found is not None]
        start = time.perf_counter()
        classifier.classify(list(clips), sampling_rate=SAMPLING_RATE,
                            batch_size=batch)
        model_s = time.perf_counter() - start
    except Exception as error:
        rec.add("gpu_files", {"label": "files", "error": repr(error)[:300]})
        return
    rec.add("gpu_files", {
        "label": "files", "clips": len(clips), "classified": len(results),
        "skipped": len(skipped), "files_s": files_s, "model_s": model_s,
        "clips_per_s": len(clips) / files_s,
        "model_share": model_s / files_s,
        "gpu_busy_samples": samples,
    })


# tagging.py ------------------------------------------------------------------


def tag_geometries(settings, converter):
    """`(label, geometry, how, tag keyword arguments)` of the two geometries.

    "same": the reference's windows (hop = window = max_length frames of
    10 ms); "default": `tag`'s defaults (window: the model's whole input,
    hop: half a window), about twice the windows.
    """
    window_s = settings["window"] / converter.sampling_rate
    return (
        ("hop = window", "same",
         f"`tag(audio, window_seconds={window_s:g}, hop_seconds="
         f"{window_s:g}, batch_size={{batch}})`",
         dict(window_seconds=window_s, hop_seconds=window_s)),
        ("default hop", "default",
         "`tag(audio, batch_size={batch})`: window "
         f"{converter.num_samples / converter.sampling_rate:g} s (the "
         "model's input), hop half a window",
         {}),
    )


def time_tag(rec, classifier, audio, geometry, batch_size, reference):
    """Warms up `tag`, then times it on `audio`.

    The warm-up runs batches of the shapes the timed call will use
    (`keras_ast.inference.classify.batch_plan`), so the timed call
    compiles nothing.
    Records the windows, the windows scored (with padding rows) and, when
    `reference` scores are given, the largest difference from them.
    """
    import numpy as np

    from keras_ast.inference.classify import batch_plan
    from keras_ast.inference.classify import compiles_per_shape
    from keras_ast.inference.classify import window_geometry
    from keras_ast.inference.timeline import window_starts

    label, kind, how, kwargs = geometry
    converter = classifier.preprocessor
    window, hop = window_geometry(converter, **kwargs)
    entry = {"label": f"{label}, batch {batch_size}", "geometry": kind,
             "batch": batch_size,
             "how": how.replace("{batch}", str(batch_size))}
    plan = batch_plan(len(window_starts(len(audio), window, hop)),
                      batch_size, compiles_per_shape(classifier))
    # One-window recordings, as many as a first and a last batch hold, so
    # the warm-up compiles every batch shape the timed call uses.
    warm = plan[0][1] + (plan[-1][1] if len(plan) > 1 else 0)
    timeline = rec.measure_once(
        "tagging", entry,
        lambda: classifier.tag([audio[:window]] * warm,
                               sampling_rate=converter.sampling_rate,
                               batch_size=batch_size, **kwargs),
        lambda: classifier.tag(audio, sampling_rate=converter.sampling_rate,
                               batch_size=batch_size, **kwargs),
        len(audio) / converter.sampling_rate, "audio s/s")
    if timeline is not None:
        windows = len(timeline.starts)
        entry["windows"] = windows
        entry["scored"] = sum(shape for _, _, shape in plan)
        if reference is not None and reference.shape == timeline.scores.shape:
            entry["max_abs_diff"] = float(
                np.max(np.abs(timeline.scores - reference)))
        rec.flush()
    return entry


def profile_batch(rec, backend, classifier, audio, entry):
    """Where `entry`'s time went: one warm batch, and its converter share.

    Times one `predict_on_batch` of the batch shape `entry` used (already
    compiled by its warm-up) and the converter alone on that batch (the
    backend's first converter call, warmed up, median of 3); stored in
    `entry` as `batch_s` and `converter_batch_s`.
    """
    import statistics

    import numpy as np

    from measure import time_calls

    batch, window = entry["batch"], entry["window"]
    waveforms = np.stack([audio[i * window:(i + 1) * window]
                          for i in range(batch)])
    inputs = {"waveforms": waveforms,
              "lengths": np.full(batch, window, np.int32)}
    try:
        _, times = time_calls(
            lambda: np.asarray(classifier.predict_on_batch(inputs)), 0, 1)
        entry["batch_s"] = times[0]
        call = backend.converter_calls[0]
        run = _cpu_run(backend, call.wrap(classifier.preprocessor),
                       waveforms)
        _, times = time_calls(run, 1, 3)
        entry["converter_batch_s"] = statistics.median(times)
        entry["converter_how"] = call.label
    except Exception as error:  # the profile is extra: keep the figures
        entry["profile_error"] = str(error)[:300]
    rec.flush()


def run_tagging(name, settings, rec):
    """`ASTClassifier.tag` over the recording, loaded from the reference.

    The classifier is the reference's seeded model (its `save_pretrained`
    folder, read by `from_preset`). The reference's geometry is timed with
    each batch size of `settings["batch_sizes"]`; the fastest is profiled
    and then times `tag`'s default geometry.
    """
    import os

    import keras_ast
    import numpy as np

    backend = BACKENDS[name]
    work = settings["work"]
    audio = np.load(os.path.join(work, "recording.npy"))
    reference_path = os.path.join(work, "reference-scores.npy")
    reference = (np.load(reference_path) if os.path.exists(reference_path)
                 else None)
    classifier = keras_ast.ASTClassifier.from_preset(
        os.path.join(work, "model"), multi_label=True)
    same, default = tag_geometries(settings, classifier.preprocessor)
    entries = []
    for batch_size in settings["batch_sizes"]:
        entries.append(time_tag(rec, classifier, audio, same, batch_size,
                                reference))
    timed = [e for e in entries if "rate" in e]
    if not timed:
        return
    fastest = max(timed, key=lambda e: e["rate"])
    fastest["window"] = settings["window"]
    profile_batch(rec, backend, classifier, audio, fastest)
    time_tag(rec, classifier, audio, default, fastest["batch"], None)
    # The same windows in mixed_bfloat16 (AMX / AVX512-BF16 matrix units).
    half = keras_ast.ASTClassifier.from_preset(
        os.path.join(work, "model"), multi_label=True,
        dtype="mixed_bfloat16")
    label, _, how, kwargs = same
    time_tag(rec, half, audio,
             (label + ", mixed_bfloat16", "bfloat16",
              how + " on `from_preset(..., "
              "dtype=\"mixed_bfloat16\")`", kwargs),
             fastest["batch"], reference)


def run(name, settings, sections, rec):
    """Every requested section on backend `name` (this process's backend)."""
    import keras

    assert keras.config.backend() == name, keras.config.backend()
    backend = BACKENDS[name]
    rec.info(**backend.info())
    if "tagging" in sections:
        run_tagging(name, settings, rec)
        return
    if {"features", "features_compile"} & set(sections):
        measure_features(rec, backend, settings, sections)
    if "e2e" in sections:
        measure_e2e(rec, backend, settings)
    if "paired" in sections:
        measure_paired(rec, backend, settings)
    if "paired_bf16" in sections:
        measure_paired(rec, backend, settings, bfloat16=True)
    if "memory" in sections:
        measure_memory(rec, settings)
    if "gpu" in sections:
        measure_gpu(rec, backend, settings)
