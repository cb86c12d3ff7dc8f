"""What run_benchmarks.py measures: the sizes, the inputs and the FLOPs."""

SAMPLING_RATE = 16000

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
# The settings the command line may override.
OVERRIDABLE = ("batch_size", "clip_seconds", "fe_warmup", "fe_iters",
               "e2e_warmup", "e2e_iters", "gpu_batch_size", "gpu_warmup",
               "gpu_iters")


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
