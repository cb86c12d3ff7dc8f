"""`run_layer_test`: the Keras contract every keras_ast layer and model keeps.

One call checks, for a layer or a model and inputs it takes:

- config: `from_config(get_config())` rebuilds it with an equal config, and
  with the same weights it gives the same outputs;
- saving: a `.keras` file (of the model, or of the layer inside a functional
  model) loads back and gives the same outputs; with `preset=True`,
  `save_to_preset` and `from_preset` do too;
- compiling: a model's `predict` compiled with XLA (`jit_compile=True`;
  JAX and TensorFlow), or the call compiled as `conftest.compiled` does (a
  layer; a model on PyTorch), gives the eager outputs;
- mixed precision: built under the `mixed_float16` and `mixed_bfloat16`
  policies with the float32 weights, its variables stay float32, the
  sublayers `float32_layers` names compute in float32 and those
  `mixed_layers` names in the policy's float16 or bfloat16, and its outputs
  are finite, float32 when `float32_outputs`, within `mixed_atol` of the
  float32 outputs and correlated with them.

Each test file keeps its own tests of what the object computes; this helper
checks only that the object survives the ways Keras rebuilds and runs it.
"""

import contextlib
import warnings

import keras
import numpy as np
from conftest import compiled

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def _numpy(outputs):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)


def _assert_outputs_close(got, expected, atol, what):
    keras.tree.assert_same_structure(got, expected)
    for ours, theirs in zip(keras.tree.flatten(got),
                            keras.tree.flatten(expected)):
        assert ours.shape == theirs.shape, what
        np.testing.assert_allclose(ours, theirs, atol=atol, rtol=0,
                                   err_msg=what)


@contextlib.contextmanager
def dtype_policy(name):
    """The global Keras dtype policy set to `name` inside the block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _copy_weights(source, target):
    """`source`'s weights into `target`, building `target` as it was."""
    if not target.built:
        target.build_from_config(source.get_build_config())
    target.set_weights(source.get_weights())


def _saved_model_of(obj, inputs, call_kwargs):
    """`obj` if it is a model, else a functional model around the layer."""
    if isinstance(obj, keras.Model):
        return obj
    x = np.asarray(inputs)
    tensor = keras.Input(shape=x.shape[1:], dtype=str(x.dtype))
    return keras.Model(tensor, obj(tensor, **call_kwargs))


def _compiled_outputs(obj, inputs, call_kwargs):
    """The outputs of `obj` on `inputs` computed by a compiled program."""
    if isinstance(obj, keras.Model) and keras.config.backend() != "torch":
        obj.jit_compile = True
        obj.predict_function = None
        return _numpy(obj.predict(inputs, verbose=0))
    # A layer, or a model on PyTorch: Keras compiles `predict` there with
    # TorchDynamo's default (inductor) backend, which generates C++
    # kernels; `compiled` traces the same graphs without them.
    fn = compiled(lambda x: obj(x, **call_kwargs))
    return _numpy(fn(keras.tree.map_structure(keras.ops.convert_to_tensor,
                                              inputs)))


def run_layer_test(make, inputs, tmp_path, *, call_kwargs=None,
                   preset=False, float32_layers=None, mixed_layers=None,
                   float32_outputs=True, atol=0, compiled_atol=1e-5,
                   check_compiled=None, mixed_atol=0.1,
                   mixed_policies=MIXED_POLICIES):
    """Checks the Keras contract of the layer or model `make()` returns.

    Args:
        make: a function of no arguments that returns a new layer or model,
            with the same configuration at each call (random weights may
            differ: the test copies them).
        inputs: what the object is called on (an array or a structure of
            arrays, with a batch dimension).
        tmp_path: a folder for the `.keras` file and the preset.
        call_kwargs: keyword arguments of each call (e.g. `training=True`
            for a seeded random layer: each copy starts from the seed).
        preset: whether to check `save_to_preset` and `from_preset`, or a
            function `(obj, directory)` that writes a preset with `obj`'s
            `save_to_preset` where it does not write a whole preset alone.
        float32_layers: a function of the object built under a mixed policy
            that returns the sublayers that must compute in float32.
        mixed_layers: a function of the object built under a mixed policy
            that returns the sublayers that compute in the policy's
            float16 or bfloat16.
        float32_outputs: whether the outputs stay float32 under a mixed
            policy.
        atol: the tolerance between the outputs of the copies (from the
            config, the file, the preset) and the eager outputs.
        compiled_atol: the tolerance between the compiled program's outputs
            and the eager outputs.
        check_compiled: a function of the compiled program's outputs that
            checks them, in place of the comparison with the eager outputs
            (random layers: XLA may draw other random numbers than eager
            TensorFlow does).
        mixed_atol: the tolerance between mixed and float32 outputs.
        mixed_policies: the mixed policies to check.

    Returns:
        The object's eager outputs on `inputs`, as NumPy arrays.
    """
    call_kwargs = dict(call_kwargs or {})
    obj = make()
    cls = type(obj)
    expected = _numpy(obj(inputs, **call_kwargs))

    # Config round trip: an equal config and, with the weights, the outputs.
    config = obj.get_config()
    restored = cls.from_config(config)
    assert restored.get_config() == config
    _copy_weights(obj, restored)
    _assert_outputs_close(_numpy(restored(inputs, **call_kwargs)), expected,
                          atol, "from_config(get_config())")

    # A `.keras` file: config, weights and (for a model) its compile state.
    obj = make()
    _copy_weights(restored, obj)
    model = _saved_model_of(obj, inputs, call_kwargs)
    path = str(tmp_path / "saved.keras")
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)  # safe_mode is on
    # A model comes back compiled as it was saved.
    assert not [w for w in caught if "compile()" in str(w.message)]
    if model is obj:
        assert isinstance(loaded, cls)
        assert loaded.get_config() == obj.get_config()
        got = loaded(inputs, **call_kwargs)
    else:
        got = loaded(inputs)
    _assert_outputs_close(_numpy(got), expected, atol, path)

    if preset:
        preset_dir = str(tmp_path / "preset")
        if callable(preset):
            preset(obj, preset_dir)
        else:
            obj.save_to_preset(preset_dir)
        reloaded = cls.from_preset(preset_dir)
        assert isinstance(reloaded, cls)
        _assert_outputs_close(_numpy(reloaded(inputs, **call_kwargs)),
                              expected, atol, "from_preset")

    # A compiled program from a copy that has not run eagerly.
    obj = make()
    _copy_weights(restored, obj)
    got = _compiled_outputs(obj, inputs, call_kwargs)
    if check_compiled is None:
        _assert_outputs_close(got, expected, compiled_atol, "compiled")
    else:
        check_compiled(got)

    for policy in mixed_policies:
        with dtype_policy(policy):
            mixed = make()
        _copy_weights(restored, mixed)
        for variable in mixed.weights:
            assert variable.dtype == "float32", (policy, variable.path)
        for layer in float32_layers(mixed) if float32_layers else ():
            assert layer.compute_dtype == "float32", (policy, layer.name)
        low = keras.dtype_policies.get(policy).compute_dtype
        for layer in mixed_layers(mixed) if mixed_layers else ():
            assert layer.compute_dtype == low, (policy, layer.name)
        got = mixed(inputs, **call_kwargs)
        for ours, theirs in zip(keras.tree.flatten(got),
                                keras.tree.flatten(expected)):
            if float32_outputs:
                assert keras.backend.standardize_dtype(
                    ours.dtype) == "float32", policy
            ours = keras.ops.convert_to_numpy(
                keras.ops.cast(ours, "float32"))
            assert np.isfinite(ours).all(), policy
            np.testing.assert_allclose(ours, theirs, atol=mixed_atol,
                                       rtol=0, err_msg=policy)
            if theirs.std() > 0:
                correlation = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
                assert correlation > 0.99, (policy, correlation)
    return expected
