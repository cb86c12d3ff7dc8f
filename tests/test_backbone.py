"""ASTBackbone against transformers' ASTModel, on random weights."""

import contextlib
import gc
import weakref

import keras
import numpy as np
import pytest
from conftest import CONFIGS
from conftest import compiled
from conftest import to_numpy
from layer_testing import run_layer_test

from keras_ast import ASTBackbone
from keras_ast import ASTEmbedding
from keras_ast import ASTEncoderLayer


def torch_backbone_outputs(model, features, **kwargs):
    import torch

    with torch.no_grad():
        return model.audio_spectrogram_transformer(
            torch.from_numpy(features), **kwargs
        )


def random_features(max_length, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, max_length, 128)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_outputs_match_reference(reference, name):
    directory, model, _ = reference(name)
    backbone = ASTBackbone.from_preset(directory)
    features = random_features(backbone.max_length)
    expected = torch_backbone_outputs(model, features)
    got = backbone.predict(features, verbose=0)
    f, t = backbone.token_grid
    assert got["sequence_output"].shape == (2, f * t + 2, 32)
    np.testing.assert_allclose(got["sequence_output"],
                               expected.last_hidden_state.numpy(), atol=1e-4)
    np.testing.assert_allclose(got["pooled_output"],
                               expected.pooler_output.numpy(), atol=1e-4)


def test_hidden_states_and_attentions_match_reference(reference):
    directory, model, _ = reference("speech_commands")
    model.set_attn_implementation("eager")
    try:
        backbone = ASTBackbone.from_preset(directory)
        features = random_features(128)
        expected = torch_backbone_outputs(model, features,
                                          output_hidden_states=True,
                                          output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    got = backbone.hidden_states(features)
    assert len(got["hidden_states"]) == backbone.num_layers + 1
    assert len(got["attentions"]) == backbone.num_layers
    for ours, theirs in zip(got["hidden_states"], expected.hidden_states):
        np.testing.assert_allclose(to_numpy(ours), theirs.numpy(), atol=1e-4)
    for ours, theirs in zip(got["attentions"], expected.attentions):
        assert tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_allclose(to_numpy(ours), theirs.numpy(), atol=1e-5)
    np.testing.assert_allclose(to_numpy(got["pooled_output"]),
                               expected.pooler_output.numpy(), atol=1e-4)
    # The analysis path and the fused-attention path agree.
    fast = backbone.predict(features, verbose=0)
    np.testing.assert_allclose(to_numpy(got["sequence_output"]),
                               fast["sequence_output"], atol=1e-5)


def tiny_backbone(**kwargs):
    config = dict(hidden_dim=32, num_layers=2, num_heads=4,
                  intermediate_dim=64, max_length=64, frequency_stride=12,
                  time_stride=12)
    config.update(kwargs)
    return ASTBackbone(**config)


def test_backbone_keras_contract(tmp_path):
    run_layer_test(
        lambda: tiny_backbone(layer_norm_epsilon=1e-6, dropout=0.1),
        random_features(64), tmp_path, preset=True,
        # LayerNorm keeps the outputs float32; the matmuls are mixed.
        float32_layers=lambda b: [b.encoder_layers[0].norm_before,
                                  b.encoder_layers[0].norm_after,
                                  b.final_norm],
        mixed_layers=lambda b: [b.embedding, b.encoder_layers[0].query],
    )


def test_patchout_backbone_keras_contract(tmp_path):
    # Inference: every token, whatever the patchout settings; the settings
    # survive the config, the `.keras` file and the preset.
    out = run_layer_test(
        lambda: tiny_backbone(patchout_time=1, patchout_frequency=2,
                              patchout_random=0.2),
        random_features(64), tmp_path, preset=True,
        mixed_layers=lambda b: [b.embedding, b.patchout],
    )
    frequency, time = tiny_backbone().token_grid
    assert out["sequence_output"].shape[1] == 2 + frequency * time
    restored = keras.saving.load_model(str(tmp_path / "saved.keras"))
    assert (restored.patchout_time, restored.patchout_frequency,
            restored.patchout_random) == (1, 2, 0.2)


def test_embedding_keras_contract(tmp_path):
    features = random_features(48, seed=1)[..., :32]
    run_layer_test(
        lambda: ASTEmbedding(16, num_mel_bins=32, max_length=48,
                             frequency_stride=8, time_stride=8, dropout=0.1),
        features, tmp_path, float32_outputs=False,
        mixed_layers=lambda layer: [layer, layer.projection],
    )


def test_encoder_layer_keras_contract(tmp_path):
    tokens = np.random.default_rng(2).standard_normal((2, 23, 16))
    run_layer_test(
        lambda: ASTEncoderLayer(16, 2, 32, layer_norm_epsilon=1e-6,
                                dropout=0.1, attention_dropout=0.1),
        tokens.astype("float32"), tmp_path, float32_outputs=False,
        float32_layers=lambda layer: [layer.norm_before, layer.norm_after],
        mixed_layers=lambda layer: [layer.query, layer.intermediate],
    )


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        ASTEncoderLayer(30, 4, 64)


def test_patch_must_fit():
    with pytest.raises(ValueError, match="does not fit"):
        ASTEmbedding(16, num_mel_bins=128, max_length=8)


def test_dropout_only_in_training():
    backbone = tiny_backbone(dropout=0.5, attention_dropout=0.5)
    features = keras.ops.convert_to_tensor(random_features(64))
    a = to_numpy(backbone(features, training=False)["pooled_output"])
    b = to_numpy(backbone(features, training=False)["pooled_output"])
    np.testing.assert_array_equal(a, b)
    c = to_numpy(backbone(features, training=True)["pooled_output"])
    assert np.abs(a - c).max() > 1e-3


def test_training_and_inference_attention_agree():
    # Without dropout, training and inference give the same tokens, eager
    # and compiled, though XLA on a CPU computes attention two ways.
    layer = ASTEncoderLayer(32, num_heads=4, intermediate_dim=64)
    tokens = keras.ops.convert_to_tensor(
        np.random.default_rng(3).standard_normal((2, 23, 32)).astype("f4"))
    expected = to_numpy(layer(tokens, training=False))
    np.testing.assert_allclose(to_numpy(layer(tokens, training=True)),
                               expected, atol=1e-5)
    if keras.config.backend() != "torch":
        np.testing.assert_allclose(
            to_numpy(compiled(lambda x: layer(x, training=True))(tokens)),
            expected, atol=1e-5)


def test_pooled_output_shortcut_is_exact():
    backbone = tiny_backbone(num_layers=3)
    features = keras.ops.convert_to_tensor(random_features(64))
    full = to_numpy(backbone(features)["pooled_output"])
    short = to_numpy(backbone.pooled_output(features))
    np.testing.assert_allclose(short, full, atol=1e-5)


def test_eager_call_frees_each_layer_output():
    # Keeping every layer's output (not asked for) made `predict` on 32
    # AudioSet clips hold 13 x 119 MB more than the reference.
    backbone = tiny_backbone(num_layers=4)
    features = keras.ops.convert_to_tensor(random_features(64))
    outputs, kept = [], []
    for layer in backbone.encoder_layers:
        call = layer.call

        def recorded(tokens, *args, call=call, **kwargs):
            gc.collect()
            # Alive while this layer runs: earlier outputs but its input.
            kept.append(sum(ref() is not None for ref in outputs[:-1]))
            result = call(tokens, *args, **kwargs)
            outputs.append(weakref.ref(result))
            return result

        layer.call = recorded
    inference = contextlib.nullcontext()
    if keras.config.backend() == "torch":  # as `predict` runs it
        import torch

        inference = torch.no_grad()
    with inference:
        pooled = backbone.pooled_output(features)
        assert tuple(pooled.shape) == (2, 32) and len(kept) == 4
        assert kept == [0, 0, 0, 0]
        states = backbone.hidden_states(features, output_attentions=False)
    assert len(states["hidden_states"]) == 5
