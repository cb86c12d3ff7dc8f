"""The reference measurements: Hugging Face `transformers`' AST, in a child.

Feature extraction (`ASTFeatureExtractor`, numpy path), end to end
(extractor + `ASTForAudioClassification`, sdpa, float32) and, on a GPU, the
model forward alone in bfloat16; one function each. For tagging.py: the
seeded model both sides share (`save_tagging_model`) and the loop a user of
the reference writes to tag a long recording (`tag_loop`, `run_tagging`).
"""

from workload import SAMPLING_RATE, make_features, make_waveforms
from workload import measure_memory as record_memory
from workload import warmup_iters


def numpy_path_extractor(rec, settings):
    """`ASTFeatureExtractor` forced onto its numpy path.

    The brief's reference is the numpy path; with torchaudio installed the
    extractor would take the torchaudio Kaldi path instead.
    """
    import torch
    import transformers
    from transformers.models.audio_spectrogram_transformer import (
        feature_extraction_audio_spectrogram_transformer as fe_module,
    )

    had_torchaudio = bool(fe_module.is_speech_available())
    fe_module.is_speech_available = lambda: False
    rec.info(
        torch_threads=torch.get_num_threads(),
        torchaudio_installed=had_torchaudio,
        feature_path="numpy",
    )
    return transformers.ASTFeatureExtractor(
        num_mel_bins=settings["num_mel_bins"],
        max_length=settings["max_length"],
    )


def make_model(settings, **kwargs):
    """`ASTForAudioClassification` (sdpa) of the benchmark's sizes."""
    import transformers

    config = transformers.ASTConfig(
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
    return transformers.AutoModelForAudioClassification.from_config(
        config, attn_implementation="sdpa", **kwargs
    ).eval()


def measure_features(rec, settings, extractor):
    clips = list(make_waveforms(settings))

    def run():
        out = extractor(clips, sampling_rate=SAMPLING_RATE,
                        return_tensors="np")
        return out["input_values"]

    rec.measure(
        "features", "reference",
        "`ASTFeatureExtractor()(clips, sampling_rate=16000, "
        "return_tensors=\"np\")`, numpy path",
        run, len(clips), *warmup_iters(settings, "features"),
    )


def _end_to_end(extractor, model, clips, autocast=False):
    """`run()`: clips -> features (on the host) -> logits, under
    `torch.no_grad()`; the features go to the model's device and dtype.
    With `autocast`, the model runs under `torch.autocast` in bfloat16."""
    import torch

    def run():
        with torch.no_grad(), torch.autocast(
                model.device.type, dtype=torch.bfloat16, enabled=autocast):
            inputs = extractor(clips, sampling_rate=SAMPLING_RATE,
                               return_tensors="pt")
            values = inputs["input_values"].to(model.device, model.dtype)
            # numpy out: waits for the device.
            return model(input_values=values).logits.float().cpu().numpy()

    return run


def end_to_end_run(settings, extractor, autocast=False):
    """The end to end section's `run()` (also the paired sections')."""
    return _end_to_end(extractor, make_model(settings),
                       list(make_waveforms(settings)), autocast)


def measure_e2e(rec, settings, extractor):
    run = end_to_end_run(settings, extractor)
    rec.measure(
        "e2e", "reference",
        "`ASTFeatureExtractor` + `ASTForAudioClassification` (sdpa, "
        "float32) under `torch.no_grad()`",
        run, settings["batch_size"], *warmup_iters(settings, "e2e"),
    )


def measure_memory(rec, settings, extractor):
    run = _end_to_end(extractor, make_model(settings), list(
        make_waveforms(settings, settings["memory_batch_size"])))
    record_memory(
        rec, "reference", "`ASTFeatureExtractor` + "
        "`ASTForAudioClassification` (sdpa, float32), all clips in one call, "
        "under `torch.no_grad()`", run)


def measure_gpu(rec, settings, extractor):
    """On the GPU, bfloat16: the forward alone on features there, and end
    to end from waveforms (the extractor runs on the host: it has no
    device path); the attention kernels are recorded."""
    import torch
    from backends import profiled_attention

    if not torch.cuda.is_available():
        rec.skip("gpu", "reference", "", "torch sees no CUDA device")
        return
    rec.info(gpu=torch.cuda.get_device_name(0))
    batch = settings["gpu_batch_size"]
    timing = (batch, *warmup_iters(settings, "gpu"))
    model = make_model(settings, dtype=torch.bfloat16).to("cuda")
    features = torch.from_numpy(make_features(settings, batch)).to(
        "cuda", torch.bfloat16
    )

    def run():
        with torch.no_grad():
            logits = model(input_values=features).logits
        torch.cuda.synchronize()
        return logits

    rec.measure(
        "gpu", "reference",
        "`ASTForAudioClassification` (sdpa), bfloat16 weights and "
        "features, `torch.no_grad()`",
        run, *timing,
    )
    rec.info(attention_gpu=profiled_attention(run))
    end_to_end = _end_to_end(extractor, model,
                             list(make_waveforms(settings, batch)))
    rec.measure(
        "gpu_e2e", "reference",
        "`ASTFeatureExtractor` on the host (numpy path), then the bfloat16 "
        "model on the GPU",
        end_to_end, *timing,
    )


def save_tagging_model(settings, folder):
    """A seeded random model and its extractor, `save_pretrained` to `folder`.

    keras_ast loads the same folder (`ASTClassifier.from_preset`), so both
    sides score with the same weights and their scores can be compared.
    """
    import torch
    import transformers

    torch.manual_seed(settings["seed"])
    model = make_model(settings)
    model.save_pretrained(folder)
    extractor = transformers.ASTFeatureExtractor(
        num_mel_bins=settings["num_mel_bins"],
        max_length=settings["max_length"],
    )
    extractor.save_pretrained(folder)
    return model, extractor


def tag_loop(model, extractor, audio, window, bfloat16=False):
    """What a user of the reference writes: sigmoid scores per window.

    Non-overlapping windows of `window` samples (the last one shorter), one
    at a time through the extractor and the model; with `bfloat16`, the
    model under `torch.autocast("cpu", torch.bfloat16)`.
    """
    import numpy as np
    import torch

    scores = []
    with torch.inference_mode(), torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=bfloat16):
        for start in range(0, len(audio), window):
            inputs = extractor(audio[start:start + window],
                               sampling_rate=SAMPLING_RATE,
                               return_tensors="pt")
            logits = model(**inputs).logits
            scores.append(torch.sigmoid(logits.float())[0].numpy())
    return np.stack(scores)


def time_extractor(extractor, audio, window):
    """Seconds the extractor alone takes over every window (the profile)."""
    import time

    start = time.perf_counter()
    for first in range(0, len(audio), window):
        extractor(audio[first:first + window], sampling_rate=SAMPLING_RATE,
                  return_tensors="pt")
    return time.perf_counter() - start


def run_tagging(settings, rec):
    """Saves the shared model, then times `tag_loop` over the recording."""
    import numpy as np
    import torch
    from transformers.models.audio_spectrogram_transformer import (
        feature_extraction_audio_spectrogram_transformer as fe_module,
    )

    work = settings["work"]
    audio = np.load(f"{work}/recording.npy")
    model, extractor = save_tagging_model(settings, f"{work}/model")
    rec.info(torch_threads=torch.get_num_threads(),
             feature_path=("torchaudio" if fe_module.is_speech_available()
                           else "numpy"))
    window = settings["window"]
    windows = -(-len(audio) // window)
    entry = {
        "label": "reference", "geometry": "same", "batch": 1,
        "windows": windows, "scored": windows,
        "how": f"Python loop over {window / SAMPLING_RATE:g} s windows: "
               "`ASTFeatureExtractor()(window, sampling_rate=16000, "
               "return_tensors=\"pt\")`, `ASTForAudioClassification` (sdpa) "
               "under `torch.inference_mode()`, sigmoid",
    }
    scores = rec.measure_once(
        "tagging", entry,
        lambda: tag_loop(model, extractor, audio[:window], window),
        lambda: tag_loop(model, extractor, audio, window),
        len(audio) / SAMPLING_RATE, "audio s/s")
    if scores is not None:
        np.save(f"{work}/reference-scores.npy", scores)
        entry["features_s"] = time_extractor(extractor, audio, window)
        rec.flush()
    half = dict(entry, label="reference bfloat16", geometry="bfloat16",
                how=entry["how"] + ", the model under `torch.autocast(\"cpu\""
                ", torch.bfloat16)`")
    half.pop("features_s", None)
    half_scores = rec.measure_once(
        "tagging", half,
        lambda: tag_loop(model, extractor, audio[:window], window, True),
        lambda: tag_loop(model, extractor, audio, window, True),
        len(audio) / SAMPLING_RATE, "audio s/s")
    if scores is not None and half_scores is not None:
        half["max_abs_diff"] = float(np.max(np.abs(half_scores - scores)))
        rec.flush()


def run(settings, sections, rec):
    """Every requested section of the reference."""
    if "tagging" in sections:
        run_tagging(settings, rec)
        return
    extractor = numpy_path_extractor(rec, settings)
    if "features" in sections:
        measure_features(rec, settings, extractor)
    if "e2e" in sections:
        measure_e2e(rec, settings, extractor)
    if "memory" in sections:
        measure_memory(rec, settings, extractor)
    if "gpu" in sections:
        measure_gpu(rec, settings, extractor)
