"""ASTAudioConverter against transformers' ASTFeatureExtractor."""

import keras
import numpy as np
import pytest
from conftest import compiled
from conftest import SAMPLING_RATE
from conftest import clip_of
from conftest import noise
from conftest import tiny_backbone
from conftest import to_numpy
from layer_testing import run_layer_test
from transformers import ASTFeatureExtractor

from keras_ast import ASTAudioConverter
from keras_ast import pad_waveforms

SECONDS = [0.5, 1.0, 3.7, 10.0, 12.0]
SPEECH_COMMANDS = dict(max_length=128, mean=-6.845978, std=5.5654526)


def reference_features(clips, **kwargs):
    extractor = ASTFeatureExtractor(**kwargs)
    return extractor(clips, sampling_rate=SAMPLING_RATE,
                     return_tensors="np")["input_values"]


@pytest.mark.parametrize("settings", [{}, SPEECH_COMMANDS],
                         ids=["audioset", "speech_commands"])
def test_speech_matches_reference(speech, settings):
    clips = [clip_of(speech[i % len(speech)], s)
             for i, s in enumerate(SECONDS)]
    expected = reference_features(clips, **settings)
    converter = ASTAudioConverter(**settings)
    # A list of clips of different lengths: each as the reference does alone.
    got = to_numpy(converter(clips))
    assert got.shape == expected.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


def test_noise_matches_reference():
    clips = [noise(s, seed=i, scale=0.3) for i, s in enumerate(SECONDS)]
    expected = reference_features(clips)
    got = to_numpy(ASTAudioConverter()(clips))
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


def test_lengths_give_per_clip_result(speech):
    clips = [clip_of(speech[0], 2.0), clip_of(speech[1], 0.7)]
    batch, lengths = pad_waveforms(clips)
    # Garbage past a clip's length must not leak into its features.
    batch[1, lengths[1]:] = 0.9
    converter = ASTAudioConverter(max_length=300)
    got = to_numpy(converter(batch, lengths=lengths))
    for row, clip in zip(got, clips):
        alone = to_numpy(converter(clip[None]))[0]
        np.testing.assert_allclose(row, alone, atol=1e-5)
    np.testing.assert_allclose(
        got, reference_features(clips, max_length=300), atol=1e-3
    )


def test_one_dimensional_input_is_one_clip():
    clip = noise(1.0)
    converter = ASTAudioConverter(max_length=128)
    got = to_numpy(converter(clip))
    assert got.shape == (1, 128, 128)
    np.testing.assert_allclose(got, to_numpy(converter(clip[None])))


def test_truncates_long_clips():
    clip = noise(15.0)
    got = to_numpy(ASTAudioConverter(max_length=200)(clip))
    np.testing.assert_allclose(
        got, reference_features([clip], max_length=200), atol=1e-3
    )


@pytest.mark.parametrize("samples", [1, 250, 399])
def test_clip_shorter_than_a_frame_is_zero_padded_to_one(samples):
    clip = noise(samples / SAMPLING_RATE, scale=0.3)
    converter = ASTAudioConverter(max_length=16)
    got = to_numpy(converter(clip))
    # Defined as the reference's result for the clip padded to 400 samples.
    padded = np.pad(clip, (0, 400 - samples))
    expected = reference_features([padded], max_length=16)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    # Only the first frame holds audio; the rest are the padding value.
    padding_value = (0.0 - converter.mean) / (2 * converter.std)
    np.testing.assert_allclose(got[0, 1:], padding_value, atol=1e-6)


def test_unnormalized_features():
    clip = noise(1.0)
    got = to_numpy(ASTAudioConverter(max_length=128, do_normalize=False)(clip))
    expected = reference_features([clip], max_length=128, do_normalize=False)
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_wrong_sampling_rate_is_refused():
    converter = ASTAudioConverter(max_length=16)
    with pytest.raises(ValueError, match="44100 Hz.*expects 16000 Hz"):
        converter(noise(0.1), sampling_rate=44100)
    # The right rate is accepted.
    converter(noise(0.1), sampling_rate=16000)


def test_more_than_two_dimensions_is_refused():
    converter = ASTAudioConverter(max_length=16)
    stereo = np.zeros((2, 1600, 2), np.float32)
    with pytest.raises(ValueError, match=r"mono.*\(2, 1600, 2\)"):
        converter(stereo)
    with pytest.raises(ValueError, match="mono"):
        converter(keras.ops.convert_to_tensor(stereo))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
    clip = noise(0.2)
    clip[123] = bad
    converter = ASTAudioConverter(max_length=16)
    with pytest.raises(ValueError, match=r"NaN or infinite.*\[123\]"):
        converter(clip)
    with pytest.raises(ValueError, match="NaN or infinite"):
        converter(keras.ops.convert_to_tensor(clip[None]))


def test_runs_compiled_with_lengths():
    clips = [noise(1.0, seed=1), noise(0.3, seed=2)]
    batch, lengths = pad_waveforms(clips)
    converter = ASTAudioConverter(max_length=128)
    eager = to_numpy(converter(batch, lengths=lengths))
    fn = compiled(lambda x, n: converter(x, lengths=n))
    got = to_numpy(fn(keras.ops.convert_to_tensor(batch),
                      keras.ops.convert_to_tensor(lengths)))
    np.testing.assert_allclose(got, eager, atol=1e-4)


def save_in_preset(converter, directory):
    # A converter's preset lies beside its model's.
    tiny_backbone(max_length=converter.max_length).save_to_preset(directory)
    converter.save_to_preset(directory)


def test_keras_contract(tmp_path):
    batch = np.stack([noise(0.5, seed=6), noise(0.5, seed=7)])
    run_layer_test(
        lambda: ASTAudioConverter(max_length=128, mean=-6.8, std=5.5,
                                  do_normalize=False,
                                  spectrum_method="matmul", name="features"),
        batch, tmp_path, preset=save_in_preset,
        # Unnormalised log-mels reach 10: compiled, they differ in the 6th
        # significant digit.
        compiled_atol=1e-3,
        # Float32 under every policy: the same features, bit for bit.
        float32_layers=lambda converter: [converter], mixed_atol=0,
    )


def test_spectrum_method_is_checked():
    with pytest.raises(ValueError, match="'fft' or 'matmul', got 'dft'"):
        ASTAudioConverter(spectrum_method="dft")


def test_dc_offset_matches_reference(speech):
    # The converter removes each frame's mean after, not before, its
    # pre-emphasis (an identity the window makes exact): an offset tests it.
    clips = [clip_of(speech[0], 1.0) + 0.4, noise(0.6, seed=3) - 0.25]
    expected = reference_features(clips, max_length=128)
    got = to_numpy(ASTAudioConverter(max_length=128)(clips))
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("with_lengths", [False, True])
def test_eager_call_matches_layer_graph(with_lengths):
    """An eager call (compiled on JAX and TensorFlow) gives what the layer
    gives inside a compiled function, for host arrays and tensors."""
    converter = ASTAudioConverter(max_length=64)
    batch = np.stack([noise(0.9, seed=4), noise(0.9, seed=5)])
    lengths = np.array([14400, 5000], "int32") if with_lengths else None
    fn = compiled(lambda x: converter(x))
    if with_lengths:
        fn = compiled(lambda x, n: converter(x, lengths=n))
    args = [keras.ops.convert_to_tensor(batch)] + (
        [keras.ops.convert_to_tensor(lengths)] if with_lengths else [])
    expected = to_numpy(fn(*args))
    for given in (batch, args[0]):
        got = to_numpy(converter(given, lengths=lengths))
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_eager_calls_compile_once_per_batch_size(monkeypatch):
    if keras.config.backend() == "torch":
        pytest.skip("PyTorch runs the converter eagerly, op by op")
    converter = ASTAudioConverter(max_length=32)
    traces = []
    original = converter.call

    def counting_call(*args, **kwargs):
        traces.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(converter, "call", counting_call)
    first = to_numpy(converter(noise(0.2, seed=1)[None]))
    # Other clip lengths reuse the compiled computation: host arrays are cut
    # or padded to the samples the frames use before the call.
    for seconds in (0.3, 0.5, 2.0):
        converter(noise(seconds, seed=2)[None])
    assert len(traces) == 1
    np.testing.assert_allclose(
        first, to_numpy(ASTAudioConverter(max_length=32).call(
            keras.ops.convert_to_tensor(noise(0.2, seed=1)[None]))),
        atol=1e-4)
