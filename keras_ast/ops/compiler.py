"""Compiling the functions this package compiles itself, per backend.

`COMPILERS` maps a Keras backend to the way an eager call of one of the
package's own functions (the audio converter's) runs compiled: `jit`
(`jax.jit` with `compiler_options`) on JAX, an XLA `tf.function` on
TensorFlow, and none on PyTorch, where `torch.compile` takes longer per
shape than the op-by-op call it would save.

On an x86-64 CPU, jaxlib 0.10 and later hand dot products to YNNPACK by
default; for float32 compiles `compiler_options` turns that off (XLA's own
kernels run AST's float32 products faster there), and bfloat16 compiles
keep it (YNNPACK's bfloat16 kernels are the fast ones). The option goes
to each `jit` of this module, never to the process, and a setting of the
same option in `XLA_FLAGS` wins. Keras compiles `fit`, `evaluate` and
`predict` steps itself and has no public argument for compile options:
those steps run with XLA's defaults (or the user's `XLA_FLAGS`).
"""

import functools
import os
import platform

import keras

YNN_SETTING = "xla_cpu_experimental_ynn_fusion_type"
# Machines where XLA's own kernels were the faster float32 ones.
_MEASURED_MACHINES = ("x86_64", "amd64")


def cpu_options(platform_name, machine, jaxlib_version, xla_flags,
                compute_dtype="float32"):
    """The compile options for one JAX platform, or `None` for defaults.

    Args:
        platform_name: JAX's platform, `"cpu"`, `"gpu"` or `"tpu"`.
        machine: `platform.machine()`.
        jaxlib_version: the installed jaxlib, e.g. `"0.10.2"`; before 0.10
            the option does not exist (XLA refuses unknown options).
        xla_flags: the `XLA_FLAGS` environment variable, or `None`.
        compute_dtype: the compiled function's compute dtype; only float32
            compiles take the products off YNNPACK.

    Returns:
        A dict for `jax.jit(..., compiler_options=...)`, or `None`.

    Examples:
    >>> cpu_options("cpu", "x86_64", "0.10.2", None)
    {'xla_cpu_experimental_ynn_fusion_type': ''}
    >>> cpu_options("gpu", "x86_64", "0.10.2", None) is None
    True
    >>> cpu_options("cpu", "x86_64", "0.10.2", None, "bfloat16") is None
    True
    """
    release = tuple(int(part) for part in jaxlib_version.split(".")[:2]
                    if part.isdigit())
    if (platform_name != "cpu" or machine.lower() not in _MEASURED_MACHINES
            or release < (0, 10) or YNN_SETTING in (xla_flags or "")
            or compute_dtype != "float32"):
        return None
    return {YNN_SETTING: ""}


@functools.lru_cache(maxsize=None)
def jax_on_cpu():
    """Whether Keras runs on JAX and JAX's default platform is the CPU
    (fixed for the process)."""
    if keras.config.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def compiler_options(compute_dtype="float32"):
    """`cpu_options` for this process and a compile in `compute_dtype`, or
    `None` where Keras is not on JAX."""
    if keras.config.backend() != "jax":
        return None
    import jax
    import jaxlib

    return cpu_options(jax.default_backend(), platform.machine(),
                       jaxlib.__version__, os.environ.get("XLA_FLAGS"),
                       compute_dtype)


def jit(function, compute_dtype="float32"):
    """`jax.jit(function)` with `compiler_options(compute_dtype)`."""
    import jax

    return jax.jit(function, compiler_options=compiler_options(compute_dtype))


def tensorflow_jit(function):
    """`tf.function(function)` compiled by XLA, retracing loosely."""
    import tensorflow as tf

    return tf.function(function, jit_compile=True, reduce_retracing=True)


# Keras backend -> a compiler of eager calls, or None to run them eagerly.
COMPILERS = {
    "jax": jit,
    "tensorflow": tensorflow_jit,
    "torch": None,
}


def compiler():
    """The current backend's entry of `COMPILERS` (None: run eagerly).

    Examples:
    >>> compile_fn = compiler()
    >>> square = compile_fn(lambda x: x * x) if compile_fn else None
    """
    return COMPILERS.get(keras.config.backend())
