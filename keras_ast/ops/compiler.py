"""XLA compile options for this package's compiled JAX functions.

jaxlib 0.10 hands dot products on the CPU to YNNPACK by default. On the
measured x86 CPU (AVX-512), XLA's own kernels ran AST's float32 forward
pass 1.25-1.3x as fast, with logits within 2e-6 (benchmarks/README.md,
"Where the time goes"), so float32 compiles turn YNNPACK off. bfloat16
compiles keep it: its bfloat16 products (AMX, AVX512-BF16) run 2-3x XLA's
own, which compute them at float32's rate (`keras_ast.ops.dense`). The
option goes to each compile of this package's models and converter
(`jax.jit(..., compiler_options=...)`), never to the process: the user's
other JAX code keeps XLA's defaults, and a setting of the same option in
`XLA_FLAGS` wins.
"""

import contextlib
import functools
import os
import platform

import keras

YNN_SETTING = "xla_cpu_experimental_ynn_fusion_type"
# Measured on x86-64 only; YNNPACK may be the better kernel elsewhere (Arm).
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
        compute_dtype: the compiled model's compute dtype; only float32
            compiles take the products off YNNPACK.

    Example:
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
    """Whether Keras runs on JAX and JAX's default platform is the CPU,
    where XLA compiles for a CPU (fixed for the process)."""
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


@contextlib.contextmanager
def keras_step_compiles(compute_dtype="float32"):
    """While open, Keras' JAX trainer compiles its steps with the options.

    Keras' trainer jits `train_step`, `test_step` and `predict_step` through
    its module's `jit` and has no argument for compile options, so the name
    is swapped for the span of a `make_*_function` call. Where Keras has no
    such name, or no option applies, this does nothing.
    """
    options = compiler_options(compute_dtype)
    if not options:
        yield
        return
    from keras.src.backend.jax import trainer

    original = getattr(trainer, "jit", None)
    if original is None:
        yield
        return
    trainer.jit = functools.partial(original, compiler_options=options)
    try:
        yield
    finally:
        trainer.jit = original


class CompileOptionsMixin:
    """A `keras.Model` mixin: `fit`, `evaluate` and `predict` compile their
    steps with `compiler_options()` for the model's compute dtype (nothing
    changes off JAX)."""

    def _step_compiles(self):
        return keras_step_compiles(self.dtype_policy.compute_dtype)

    def make_train_function(self, force=False):
        with self._step_compiles():
            return super().make_train_function(force)

    def make_test_function(self, force=False):
        with self._step_compiles():
            return super().make_test_function(force)

    def make_predict_function(self, force=False):
        with self._step_compiles():
            return super().make_predict_function(force)
