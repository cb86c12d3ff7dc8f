"""Shared fixtures: random-weight reference checkpoints and test audio.

Every test runs under the backend named by KERAS_BACKEND; the README's test
command runs the suite once per backend.
"""

import importlib.util
import os

import keras
import numpy as np
import pytest

from keras_ast.datasets import spoken_keywords

SAMPLING_RATE = 16000
TOOLS = os.path.join(os.path.dirname(__file__), "..", "tools")
TUTORIALS = os.path.join(os.path.dirname(__file__), "..", "tutorials")


def load_tool(name, folder=TOOLS):
    """A script of `tools/` (or another `folder`: not a package) as a
    module."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(folder, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled(fn):
    """`fn` compiled the way each backend compiles inside `fit`/`predict`.

    torch goes through TorchDynamo (`torch.compile`, as Keras does with
    `jit_compile=True`), with the `aot_eager` backend: the traced graphs run
    without generated C++ kernels, which would take minutes here.
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    import torch

    return torch.compile(fn, backend="aot_eager")


def require_speech_synthesis():
    """Skips the test without espeak-ng and sox; fails in CI."""
    if not spoken_keywords.available():
        if os.environ.get("CI"):
            pytest.fail("espeak-ng and sox are required in CI")
        pytest.skip("espeak-ng or sox is not installed")

# Small models with the geometry of the published checkpoints.
CONFIGS = {
    # AudioSet: 1024 frames, strides 10/10, 527 labels, AudioSet stats.
    "audioset": dict(max_length=1024, frequency_stride=10, time_stride=10,
                     num_labels=527),
    # AudioSet 16/16 geometry.
    "audioset_16_16": dict(max_length=1024, frequency_stride=16,
                           time_stride=16, num_labels=527),
    # Speech Commands V2: 128 frames, 35 labels, its own stats.
    "speech_commands": dict(max_length=128, frequency_stride=10,
                            time_stride=10, num_labels=35,
                            mean=-6.845978, std=5.5654526),
}
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64)


def pytest_configure(config):
    # Under pytest-xdist each worker shares the cores with the others;
    # PyTorch's OpenMP threads, one per core in every worker, would
    # oversubscribe them and spin (the torch pass ran several times
    # slower). JAX and TensorFlow keep their own pools.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and keras.config.backend() == "torch":
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_report_header(config):
    return f"keras backend: {keras.config.backend()}"


def make_reference(name, directory, weights="safetensors", seed=0):
    """Saves a random-weight `ASTForAudioClassification` in the HF format.

    Returns the torch model (eval mode) and its feature extractor.
    """
    import torch
    from transformers import ASTConfig
    from transformers import ASTFeatureExtractor
    from transformers import ASTForAudioClassification

    spec = dict(CONFIGS[name])
    stats = {k: spec.pop(k) for k in ("mean", "std") if k in spec}
    num_labels = spec.pop("num_labels")
    config = ASTConfig(
        **TINY, **spec,
        id2label={i: f"class_{i}" for i in range(num_labels)},
        label2id={f"class_{i}": i for i in range(num_labels)},
    )
    torch.manual_seed(seed)
    model = ASTForAudioClassification(config).eval()
    with torch.no_grad():
        # The reference initialises tokens and position embeddings to zero;
        # random values make the test see a wrong token order.
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    model.save_pretrained(directory)
    if weights == "bin":
        # Older hub repos hold only a pickled state dict, with the names
        # the safetensors file has.
        from safetensors.torch import load_file

        safetensors_path = os.path.join(directory, "model.safetensors")
        torch.save(load_file(safetensors_path),
                   os.path.join(directory, "pytorch_model.bin"))
        os.remove(safetensors_path)
    extractor = ASTFeatureExtractor(max_length=config.max_length, **stats)
    extractor.save_pretrained(directory)
    return model, extractor


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """`reference(name)` -> (directory, torch model, feature extractor)."""
    cache = {}

    def get(name):
        if name not in cache:
            directory = str(tmp_path_factory.mktemp(name))
            model, extractor = make_reference(name, directory)
            cache[name] = (directory, model, extractor)
        return cache[name]

    return get


def reference_logits(model, extractor, clips):
    import torch

    inputs = extractor(clips, sampling_rate=SAMPLING_RATE,
                       return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits.numpy()


@pytest.fixture(scope="session")
def speech():
    """Real synthetic speech (espeak-ng, resampled to 16 kHz by sox)."""
    require_speech_synthesis()
    texts = [
        ("The quick brown fox jumps over the lazy dog.", "en", 160),
        ("Audio spectrogram transformers classify sounds.", "en-us", 200),
        ("Yes. No. Up. Down. Left. Right. On. Off. Stop. Go.", "en", 140),
    ]
    return [spoken_keywords.speak(text, voice=voice, speed=speed)
            for text, voice, speed in texts]


def clip_of(audio, seconds):
    """`audio` repeated or cut to exactly `seconds`."""
    n = int(seconds * SAMPLING_RATE)
    reps = int(np.ceil(n / len(audio)))
    return np.tile(audio, reps)[:n].astype(np.float32)


def noise(seconds, seed=0, scale=0.1):
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLING_RATE)
    return (rng.standard_normal(n) * scale).astype(np.float32)


# The smallest backbone the model tests train and save: one layer of width
# 32 over 64 frames of 16x16 patches.
TINY_BACKBONE = dict(hidden_dim=32, num_layers=1, num_heads=4,
                     intermediate_dim=64, max_length=64, frequency_stride=16,
                     time_stride=16)


def tiny_backbone(**overrides):
    """A random-weight `ASTBackbone` of `TINY_BACKBONE` (with overrides)."""
    from keras_ast import ASTBackbone

    return ASTBackbone(**dict(TINY_BACKBONE, **overrides))


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)
