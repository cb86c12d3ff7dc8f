"""What run_benchmarks.py measures: the sizes, the inputs and the FLOPs."""

SAMPLING_RATE = 16000

# Model and clip sizes. FULL is the AudioSet configuration of
# `transformers.ASTConfig()` (527 labels); QUICK only checks the plumbing.
FULL = dict(
    clip_seconds=10.0, max_length=1024, num_mel_bins=128, hidden_dim=768,
    num_layers=12, num_heads=12, intermediate_dim=3072, patch_size=16,
    frequency_stride=10, time_stride=10, num_classes=527,
    batch_size=4, fe_warmup=2, fe_iters=10, e2e_warmup=1, e2e_iters=5,
    gpu_batch_size=64, gpu_warmup=3, gpu_iters=20, memory_batch_size=32,
)
QUICK = dict(
    FULL, clip_seconds=1.0, max_length=128, hidden_dim=64, num_layers=2,
    num_heads=4, intermediate_dim=128, fe_warmup=1, fe_iters=3,
    e2e_warmup=1, e2e_iters=2, gpu_batch_size=8, gpu_warmup=1, gpu_iters=3,
    memory_batch_size=8,
)
# The settings the command line may override.
OVERRIDABLE = ("batch_size", "clip_seconds", "fe_warmup", "fe_iters",
               "e2e_warmup", "e2e_iters", "gpu_batch_size", "gpu_warmup",
               "gpu_iters", "memory_batch_size")


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


def warmup_iters(settings, section):
    """`(warmup, iters)` of a section: features, e2e or gpu."""
    prefix = {"features": "fe"}.get(section, section)
    return settings[f"{prefix}_warmup"], settings[f"{prefix}_iters"]


# --------------------------------------------------------------------------
# tagging.py: a long recording of changing scenes.
# --------------------------------------------------------------------------

SENTENCES = (
    "The train to the airport leaves from platform four in ten minutes.",
    "Please remember to take all your belongings with you.",
    "It looks like rain this afternoon, so bring an umbrella.",
    "The meeting has been moved to the small room on the second floor.",
    "Turn left at the bakery and walk straight on for two blocks.",
    "We are sorry for the delay and thank you for your patience.",
    "Three coffees, one with milk, and a glass of water, please.",
    "The museum is open every day except Monday.",
    "Can you hear me at the back of the room?",
    "Tonight the sky will be clear and the wind light from the west.",
    "Doors are closing. Please stand clear of the doors.",
    "Good morning, and welcome to the news at nine.",
)
VOICES = ("en", "en-us", "en+f3", "en+m3", "en-us+f2")
SCENE_KINDS = ("speech", "noise", "tones", "quiet")


def _db(level):
    return 10.0 ** (level / 20.0)


def _rms_to(x, level_db):
    """`x` scaled to an RMS of `level_db` dBFS."""
    import numpy as np

    rms = float(np.sqrt(np.mean(x * x))) or 1.0
    return x * (_db(level_db) / rms)


def _coloured_noise(rng, samples, exponent):
    """Noise whose power falls as 1 / f**exponent (0 white, 1 pink, 2 red)."""
    import numpy as np

    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1.0 / SAMPLING_RATE)
    spectrum *= np.maximum(freqs, 20.0) ** (-exponent / 2.0)
    return np.fft.irfft(spectrum, samples)


def _drift_db(rng, samples, low, high):
    """A loudness envelope (linear gain) drifting between `low` and `high`
    dB, a new target every 0.5 to 3 s."""
    import numpy as np

    knots, t = [0], 0
    while t < samples:
        t += int(rng.uniform(0.5, 3.0) * SAMPLING_RATE)
        knots.append(min(t, samples))
    levels = rng.uniform(low, high, len(knots))
    return _db(np.interp(np.arange(samples), knots, levels))


def _noise_scene(rng, samples):
    exponent = rng.choice([0.0, 1.0, 2.0])
    noise = _rms_to(_coloured_noise(rng, samples, exponent), 0.0)
    return noise * _drift_db(rng, samples, -45.0, -18.0)


def _tones_scene(rng, samples):
    """Notes of 0.2 to 1 s: a gliding fundamental with a few harmonics."""
    import numpy as np

    out = np.zeros(samples)
    t = 0
    while t < samples:
        length = min(int(rng.uniform(0.2, 1.0) * SAMPLING_RATE), samples - t)
        f0 = rng.uniform(110.0, 880.0) * np.exp(
            np.linspace(0.0, rng.uniform(-0.3, 0.3), length))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLING_RATE
        note = sum(np.sin(k * phase) / k**1.5 for k in range(1, 6))
        fade = np.minimum(1.0, np.minimum(np.arange(length),
                                          np.arange(length)[::-1]) / 160.0)
        out[t:t + length] = note * fade * _db(rng.uniform(-32.0, -14.0))
        t += length + int(rng.uniform(0.0, 0.3) * SAMPLING_RATE)
    return out


def _speech_scene(rng, samples):
    """espeak-ng sentences with pauses, over faint room noise."""
    import numpy as np

    from keras_ast.datasets import spoken_keywords as speech_synthesis

    out = np.zeros(samples)
    t = int(rng.uniform(0.1, 0.8) * SAMPLING_RATE)
    level = rng.uniform(-32.0, -20.0)
    while t < samples:
        said = speech_synthesis.speak(
            str(rng.choice(SENTENCES)), voice=str(rng.choice(VOICES)),
            speed=int(rng.integers(130, 190)),
            pitch=int(rng.integers(30, 70)))
        said = _rms_to(said.astype(np.float64), level)[:samples - t]
        out[t:t + len(said)] = said
        t += len(said) + int(rng.uniform(0.3, 1.5) * SAMPLING_RATE)
    room = _rms_to(_coloured_noise(rng, samples, 1.0), level - 25.0)
    return out + room


def make_recording(seconds, seed=0, speech=None):
    """A long mono recording of changing scenes, float32 at 16 kHz.

    Scenes of 3 to 20 s follow each other, cross-faded over 50 ms: speech
    (espeak-ng sentences in several voices and speeds over faint room
    noise; only when espeak-ng and sox are installed, see
    `keras_ast.datasets.spoken_keywords`), coloured noise (white, pink or red)
    whose loudness drifts between -45 and -18 dBFS, gliding harmonic
    notes, or near silence; a noise floor at -65 dBFS runs under all.
    The same `seed` and tools give the same recording.

    Returns `(audio, description)`: description counts each kind of scene.
    """
    import numpy as np

    from keras_ast.datasets import spoken_keywords as speech_synthesis

    if speech is None:
        speech = speech_synthesis.available()
    kinds = SCENE_KINDS if speech else SCENE_KINDS[1:]
    rng = np.random.default_rng(seed)
    total = int(round(seconds * SAMPLING_RATE))
    audio = _rms_to(rng.standard_normal(total), -65.0)
    fade = int(0.05 * SAMPLING_RATE)
    counts = dict.fromkeys(kinds, 0)
    t = 0
    while t < total:
        kind = str(rng.choice(kinds, p=[0.4, 0.3, 0.2, 0.1][-len(kinds):]
                              if speech else [0.5, 0.3, 0.2]))
        length = min(int(rng.uniform(3.0, 20.0) * SAMPLING_RATE), total - t)
        counts[kind] += 1
        if kind == "quiet":
            t += length
            continue
        scene = {"speech": _speech_scene, "noise": _noise_scene,
                 "tones": _tones_scene}[kind](rng, length)
        ramp = np.minimum(1.0, np.minimum(np.arange(length) + 1,
                                          np.arange(length)[::-1] + 1)
                          / fade)
        audio[t:t + length] += scene * ramp
        t += length
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return audio, {"speech": bool(speech), "scenes": counts}


def resident_mb():
    """This process's resident memory now, in MB (Linux `/proc`)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory(rec, label, how, run):
    """Peak resident memory of one `run()` in this (fresh) process.

    Records the resident memory before the call, the process's peak after
    it (`ru_maxrss`: the call's peak, unless loading the model peaked
    higher) and the difference, the memory the call added.
    """
    import resource

    entry = {"label": label, "how": how}
    try:
        entry["before_mb"] = resident_mb()
        run()
        entry["peak_mb"] = resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024
        entry["added_mb"] = entry["peak_mb"] - entry["before_mb"]
    except Exception as error:  # recorded; the other children go on
        entry["error"] = f"{type(error).__name__}: {error}"
    return rec.add("memory", entry)
