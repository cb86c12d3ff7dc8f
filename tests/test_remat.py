"""Gradient checkpointing: `ASTBackbone(remat=True)`, `train --remat`."""

import keras
import numpy as np
import pytest

from keras_ast import ASTBackbone
from keras_ast.cli import main as cli

CONFIG = dict(hidden_dim=32, num_layers=2, num_heads=4, intermediate_dim=64,
              max_length=48, num_mel_bins=32, frequency_stride=16,
              time_stride=16)


def value_and_gradients(model, loss_fn):
    """`loss_fn()` and its gradients w.r.t. `model`'s trainable weights,
    computed the way each backend computes them in `fit` (compiled)."""
    variables = model.trainable_variables
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(
                    state_mapping=list(zip(variables, values))):
                return loss_fn()

        loss, grads = jax.jit(jax.value_and_grad(pure))(
            [v.value for v in variables])
    elif backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn()
            return loss, tape.gradient(loss, [v.value for v in variables])

        loss, grads = step()
    else:
        for v in variables:
            v.value.grad = None
        loss = loss_fn()
        loss.backward()
        grads = [v.value.grad for v in variables]
    return (keras.ops.convert_to_numpy(loss),
            [keras.ops.convert_to_numpy(g) for g in grads])


@pytest.mark.parametrize("path", ["call", "pooled_output"])
def test_remat_keeps_loss_and_gradients(path, monkeypatch):
    features = np.random.default_rng(0).standard_normal(
        (2, 48, 32)).astype("float32")
    plain = ASTBackbone(**CONFIG)
    remat = ASTBackbone(**CONFIG, remat=True)
    remat.set_weights(plain.get_weights())
    # Count the layers that went through keras.remat (the check would
    # pass trivially if remat were never applied).
    wrapped = []
    real_remat = keras.remat
    monkeypatch.setattr(keras, "remat",
                        lambda f: wrapped.append(f) or real_remat(f))

    def loss_of(backbone):
        def loss_fn():
            if path == "call":
                out = backbone(features, training=True)["sequence_output"]
            else:
                out = backbone.pooled_output(features, training=True)
            return keras.ops.mean(keras.ops.square(out))
        return loss_fn

    loss, grads = value_and_gradients(plain, loss_of(plain))
    assert not wrapped
    remat_loss, remat_grads = value_and_gradients(remat, loss_of(remat))
    assert len(wrapped) >= CONFIG["num_layers"]
    np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
    assert len(remat_grads) == len(grads)
    for a, b in zip(remat_grads, grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_remat_config_round_trip_and_flag():
    backbone = ASTBackbone(**CONFIG, remat=True)
    config = backbone.get_config()
    assert config["remat"] is True
    restored = ASTBackbone.from_config(config)
    assert restored.remat is True
    assert restored.get_config() == config
    assert ASTBackbone(**CONFIG).get_config()["remat"] is False
    args = cli.build_parser().parse_args(
        ["train", "--preset", "p", "--train", "t", "--output", "o",
         "--remat"])
    assert args.remat is True
