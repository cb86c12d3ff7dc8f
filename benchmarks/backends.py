"""The Keras backends as a table: how each compiles, places and waits.

`BACKENDS[name]` holds one backend's small functions; ours.py measures
keras_ast through them, so no measurement branches on the backend's name.
Each function imports its framework when called, so a child process loads
only its own backend.

A backend's `converter_calls` and `model_calls` are the ways the benchmark
calls a layer: `wrap(layer)` returns a function of one input tensor. Each
call's `label` names it in the results; `how` describes it in the report.
`attention(classifier, x)` names the attention kernels one forward runs.
"""

import dataclasses
import re
from typing import Callable


@dataclasses.dataclass(frozen=True)
class ConverterCall:
    """One way to call `ASTAudioConverter`; `section` runs it."""

    label: str
    how: str
    wrap: Callable
    # "features_compile" runs in a child of its own, under its own timeout.
    section: str = "features"
    # The call takes the numpy batch itself (as a feature extractor is
    # called), not the backend's tensor of it.
    host_input: bool = False


@dataclasses.dataclass(frozen=True)
class ModelCall:
    """One way to call the classifier (`how_e2e` and `how_gpu` describe it)."""

    label: str
    how_e2e: str
    how_gpu: str
    wrap: Callable


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    info: Callable  # () -> dict recorded with the results
    gpu_name: Callable  # () -> the GPU the backend sees, or None
    no_gpu: tuple  # (label, reason) recorded when it sees none
    to_input: Callable  # numpy -> the input of a call (inside the timing)
    to_numpy: Callable  # a call's output -> numpy (waits for it)
    to_device: Callable  # numpy -> a tensor on the GPU
    sync: Callable  # a GPU call's output -> waits for it
    converter_calls: tuple
    model_calls: tuple
    # (classifier, input) -> the attention kernels its forward runs.
    attention: Callable = None


def _identity(x):
    return x


# Names of fused attention kernels: cuDNN's fused attention in XLA
# (`__cudnn$fmha...`), PyTorch's sdpa kernels (flash, memory-efficient,
# cuDNN, and the CPU's flash kernel).
_FUSED_ATTENTION = re.compile(r"fmha|flash|efficient_attention|"
                              r"cudnn_attention|scaled_dot_product", re.I)
NO_FUSED = "none fused (attention as separate products)"


def _fused_in_hlo(hlo_text):
    """The fused-attention custom calls in compiled HLO text."""
    targets = set(re.findall(r'custom_call_target="([^"]+)"', hlo_text))
    return sorted(t for t in targets if _FUSED_ATTENTION.search(t)) or [
        NO_FUSED]


# The first converter call of each backend: the layer called eagerly on a
# numpy batch, as people call a feature extractor (JAX and TensorFlow
# compile it inside the layer; PyTorch runs it op by op).
EAGER_CONVERTER = ConverterCall(
    "eager", "`converter(x)` on the numpy batch, eagerly, numpy out (what a "
    "user gets)", _identity, host_input=True)


# JAX ------------------------------------------------------------------------


def _jax_info():
    import jax

    return {"device": str(jax.devices()[0])}


def _jax_gpu_name():
    import jax

    device = jax.devices()[0]
    return device.device_kind if device.platform == "gpu" else None


def _jax_jit(layer):
    import jax

    return jax.jit(lambda x: layer(x))


def _jax_stateless(model):
    """`(forward, weights)`: `jax.jit` of the model's stateless call, to
    call as `forward(*weights, x)`, weights passed as arguments."""
    import jax

    @jax.jit
    def forward(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(
            trainable, non_trainable, x, training=False
        )
        return outputs

    return forward, ([v.value for v in model.trainable_variables],
                     [v.value for v in model.non_trainable_variables])


def _jax_forward(model):
    """`jax.jit` of the stateless call, weights passed as arguments."""
    forward, weights = _jax_stateless(model)
    return lambda x: forward(*weights, x)


def _jax_attention(model, x):
    forward, weights = _jax_stateless(model)
    return _fused_in_hlo(forward.lower(*weights, x).compile().as_text())


def _jax_to_numpy(x):
    import numpy as np

    return np.asarray(x)


def _jax_to_device(x):
    import jax

    return jax.device_put(x)


JAX = Backend(
    name="jax",
    info=_jax_info,
    gpu_name=_jax_gpu_name,
    no_gpu=("jax.jit", "JAX sees no GPU"),
    to_input=_identity,
    to_numpy=_jax_to_numpy,
    to_device=_jax_to_device,
    sync=lambda out: out.block_until_ready(),
    converter_calls=(
        EAGER_CONVERTER,
        ConverterCall("jax.jit", "`jax.jit(lambda x: converter(x))`, numpy "
                      "in, numpy out", _jax_jit),
    ),
    model_calls=(
        ModelCall("jax.jit",
                  "`jax.jit` of `classifier.stateless_call(..., "
                  "training=False)`",
                  "`jax.jit` of `stateless_call`", _jax_forward),
    ),
    attention=_jax_attention,
)


# TensorFlow -----------------------------------------------------------------


def _tf_info():
    import tensorflow as tf

    return {"devices": [d.name for d in tf.config.list_logical_devices()]}


def _tf_gpu_name():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else None


def _tf_function(jit_compile, **call_kwargs):
    """`wrap(layer)`: `tf.function(lambda x: layer(x, **call_kwargs))`."""

    def wrap(layer):
        import tensorflow as tf

        return tf.function(lambda x: layer(x, **call_kwargs),
                           jit_compile=jit_compile)

    return wrap


def _tf_attention(model, x):
    """Kernels of the XLA compile; without XLA, TensorFlow has no fused
    attention op."""
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False),
                           jit_compile=True)
    hlo = function.experimental_get_compiler_ir(x)(stage="optimized_hlo")
    return [f"jit_compile=True: {name}" for name in _fused_in_hlo(hlo)]


def _tf_to_input(x):
    import tensorflow as tf

    return tf.convert_to_tensor(x)


def _tf_to_device(x):
    import tensorflow as tf

    with tf.device("/GPU:0"):
        return tf.constant(x)


TENSORFLOW = Backend(
    name="tensorflow",
    info=_tf_info,
    gpu_name=_tf_gpu_name,
    no_gpu=("tf.function", "TensorFlow sees no GPU"),
    to_input=_tf_to_input,
    to_numpy=lambda out: out.numpy(),
    to_device=_tf_to_device,
    sync=lambda out: out.numpy(),
    converter_calls=(EAGER_CONVERTER,) + tuple(
        ConverterCall(f"tf.function(jit_compile={jit})",
                      f"`tf.function(lambda x: converter(x), jit_compile="
                      f"{jit})`, numpy in, numpy out", _tf_function(jit))
        for jit in (False, True)
    ),
    model_calls=tuple(
        ModelCall(f"tf.function(jit_compile={jit})",
                  "`tf.function(lambda x: classifier(x, training=False), "
                  f"jit_compile={jit})`",
                  f"`tf.function(..., jit_compile={jit})`",
                  _tf_function(jit, training=False))
        for jit in (False, True)
    ),
    attention=_tf_attention,
)


# PyTorch --------------------------------------------------------------------


def _torch_info():
    import torch

    return {"torch_threads": torch.get_num_threads()}


def _torch_gpu_name():
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _no_grad(fn):
    """`fn(x)` under `torch.no_grad()`."""
    import torch

    def call(x):
        with torch.no_grad():
            return fn(x)

    return call


def _torch_eager_model(model):
    return _no_grad(lambda x: model(x, training=False))


def _torch_compile(layer):
    import torch

    return _no_grad(torch.compile(lambda x: layer(x)))


def profiled_attention(run):
    """The sdpa kernels in PyTorch's profile of `run()`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if cuda else [])
    with torch.no_grad(), profile(activities=activities) as prof:
        run()
        if cuda:
            torch.cuda.synchronize()
    # The innermost names: the kernels, not the `aten::` wrapper above them.
    fused = sorted({event.key[:100] for event in prof.key_averages()
                    if _FUSED_ATTENTION.search(event.key)
                    and not event.key.startswith("aten::scaled_dot_product")})
    return fused or [NO_FUSED]


def _torch_attention(model, x):
    return profiled_attention(lambda: model(x, training=False))


def _torch_to_input(x):
    import torch

    return torch.from_numpy(x)


def _torch_to_device(x):
    import torch

    return torch.from_numpy(x).to("cuda")


def _torch_sync(out):
    import torch

    torch.cuda.synchronize()
    return out


# The label and how of the torch.compile attempt, also used by the parent
# when the attempt's child does not finish.
TORCH_COMPILE = ("torch.compile", "`torch.compile(lambda x: converter(x))`")

TORCH = Backend(
    name="torch",
    info=_torch_info,
    gpu_name=_torch_gpu_name,
    no_gpu=("eager", "torch sees no CUDA device"),
    to_input=_torch_to_input,
    to_numpy=lambda out: out.cpu().numpy(),
    to_device=_torch_to_device,
    sync=_torch_sync,
    converter_calls=(
        dataclasses.replace(EAGER_CONVERTER, wrap=_no_grad,
                            how=EAGER_CONVERTER.how + ", under "
                            "`torch.no_grad()`"),
        ConverterCall(TORCH_COMPILE[0],
                      f"{TORCH_COMPILE[1]} under `torch.no_grad()`",
                      _torch_compile, section="features_compile"),
    ),
    model_calls=(
        ModelCall("eager",
                  "`classifier(x, training=False)` under `torch.no_grad()`",
                  "`classifier(x, training=False)` under `torch.no_grad()`",
                  _torch_eager_model),
    ),
    attention=_torch_attention,
)

BACKENDS = {backend.name: backend for backend in (JAX, TENSORFLOW, TORCH)}
