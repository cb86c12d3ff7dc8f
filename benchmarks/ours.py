"""keras_ast's measurements, in a child process of one Keras backend.

Each section is one function; the backend-specific parts (compiling,
placing on the GPU, waiting for a result) come from `backends.BACKENDS`.
"""

from backends import BACKENDS
from workload import make_features, make_waveforms, warmup_iters

GPU_HOW = ", `mixed_bfloat16`, float32 features on device"


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


def _cpu_run(backend, call, waveforms):
    """A call on the CPU: numpy in, numpy out."""
    return lambda: backend.to_numpy(call(backend.to_input(waveforms)))


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
                       waveforms)
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


def measure_gpu(rec, backend, settings):
    """The forward pass alone, `mixed_bfloat16`, features on the GPU."""
    gpu = backend.gpu_name()
    if gpu is None:
        label, reason = backend.no_gpu
        rec.skip("gpu", label, "", reason)
        return
    rec.info(gpu=gpu)
    batch = settings["gpu_batch_size"]
    classifier = make_classifier(settings, None, "mixed_bfloat16")
    features = backend.to_device(make_features(settings, batch))
    for call in backend.model_calls:
        forward = call.wrap(classifier)
        rec.measure("gpu", call.label, call.how_gpu + GPU_HOW,
                    lambda forward=forward: backend.sync(forward(features)),
                    batch, *warmup_iters(settings, "gpu"))


def run(name, settings, sections, rec):
    """Every requested section on backend `name` (this process's backend)."""
    import keras

    assert keras.config.backend() == name, keras.config.backend()
    backend = BACKENDS[name]
    rec.info(**backend.info())
    if {"features", "features_compile"} & set(sections):
        measure_features(rec, backend, settings, sections)
    if "e2e" in sections:
        measure_e2e(rec, backend, settings)
    if "gpu" in sections:
        measure_gpu(rec, backend, settings)
