"""`ASTClassifier.embed` and `keras-ast embed`: pooled outputs of audio."""

import warnings

import keras
import numpy as np
import pytest
import soundfile

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.data.audio_io import AudioDecodeError
from keras_ast.data.audio_io import load_audio
from keras_ast.inference import embed as embedding

RATE = 16000
HIDDEN = 32


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(2)
    backbone = ASTBackbone(hidden_dim=HIDDEN, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=64)
    return ASTClassifier(backbone, num_classes=3, labels=["a", "b", "c"],
                         preprocessor=ASTAudioConverter(max_length=64))


@pytest.fixture(scope="module")
def preset(tmp_path_factory, classifier):
    path = str(tmp_path_factory.mktemp("embed") / "preset")
    classifier.save_to_preset(path)
    return path


def clip(seconds=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 0.1).astype(
        np.float32)


def write_wav(path, seconds=0.5, seed=0):
    soundfile.write(str(path), clip(seconds, seed), RATE)
    return str(path)


def reference(classifier, waveform):
    """The backbone's pooled output of one clip, run directly."""
    features = classifier.preprocessor(waveform[None])
    return keras.ops.convert_to_numpy(
        classifier.backbone.pooled_output(features))[0]


def test_embed_is_the_pooled_output(classifier):
    a, b = clip(0.5, 0), clip(0.3, 1)
    one = classifier.embed(a, sampling_rate=RATE)
    assert one.shape == (HIDDEN,) and one.dtype == np.float32
    np.testing.assert_allclose(one, reference(classifier, a), atol=1e-5)
    # Clips of other lengths in one batch: each as if alone.
    both = classifier.embed([a, b], sampling_rate=RATE, batch_size=2)
    assert both.shape == (2, HIDDEN) and both.dtype == np.float32
    np.testing.assert_allclose(both[0], one, atol=1e-5)
    np.testing.assert_allclose(both[1], reference(classifier, b), atol=1e-5)
    # Not the head's output: the embedding comes before it.
    assert not np.allclose(both[:, :3], classifier.predict(
        [a, b], verbose=0))


def test_embed_keeps_one_model_per_classifier(classifier):
    first = embedding.embedder_of(classifier)
    classifier.embed(np.stack([clip(seed=3), clip(seed=4)]),
                     sampling_rate=RATE)
    assert embedding.embedder_of(classifier) is first


def test_a_long_clip_is_embedded_on_its_start(classifier):
    limit = classifier.preprocessor.num_samples
    long = clip(2 * limit / RATE, seed=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = classifier.embed(long, sampling_rate=RATE)
    assert any("longer" in str(w.message) for w in caught)
    np.testing.assert_allclose(got, reference(classifier, long[:limit]),
                               atol=1e-5)


def test_files_and_a_broken_one(classifier, tmp_path):
    paths = [write_wav(tmp_path / "a.wav", seed=0),
             str(tmp_path / "broken.wav"),
             write_wav(tmp_path / "c.wav", 0.3, seed=1)]
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioDecodeError):
        classifier.embed(paths)
    vectors, skipped = classifier.embed(paths, skip_errors=True,
                                        batch_size=1)
    assert vectors.shape == (2, HIDDEN)
    assert [path for path, _ in skipped] == [paths[1]]
    assert skipped[0][1]  # the reason
    expected = classifier.embed([load_audio(paths[0]), load_audio(paths[2])],
                                sampling_rate=RATE)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # One input that does not decode.
    vector, skipped = classifier.embed(paths[1], skip_errors=True)
    assert vector is None and len(skipped) == 1


def test_cli_writes_embeddings_and_paths(preset, classifier, tmp_path,
                                         capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    a = write_wav(folder / "a.wav", seed=0)
    (folder / "b_broken.wav").write_bytes(b"RIFF not really a wav")
    c = write_wav(folder / "c.wav", 0.3, seed=1)
    output = str(tmp_path / "out" / "embeddings.npz")
    status = cli.main(["embed", str(folder), "--preset", preset,
                       "--output", output, "--batch-size", "2",
                       "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1  # a file was skipped; the others are written
    assert "b_broken.wav" in captured.err and "1 of 3" in captured.err
    with np.load(output, allow_pickle=False) as data:
        assert data["paths"].tolist() == [a, c]
        assert data["embeddings"].dtype == np.float32
        np.testing.assert_allclose(
            data["embeddings"], classifier.embed([a, c]), atol=1e-5)
    assert cli.main(["embed", a, "--preset", preset, "--output", output,
                     "--no-progress"]) == 0
    with np.load(output, allow_pickle=False) as data:
        assert data["embeddings"].shape == (1, HIDDEN)


def test_cli_fails_when_nothing_decodes(preset, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    output = tmp_path / "embeddings.npz"
    status = cli.main(["embed", str(broken), "--preset", preset,
                       "--output", str(output), "--no-progress"])
    assert status == 1
    err = capsys.readouterr().err
    assert "no file decoded" in err and "broken.wav" in err
    assert not output.exists()
    # A folder without audio files: a usage error, before any model.
    (tmp_path / "empty").mkdir()
    assert cli.main(["embed", str(tmp_path / "empty"), "--preset", preset,
                     "--output", str(output)]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_cli_takes_a_backbone_preset(classifier, tmp_path):
    """A preset without a head (a backbone's) embeds as a classifier's."""
    path = str(tmp_path / "backbone")
    classifier.backbone.save_to_preset(path)
    audio = write_wav(tmp_path / "a.wav")
    output = str(tmp_path / "embeddings.npz")
    assert cli.main(["embed", audio, "--preset", path, "--output", output,
                     "--no-progress"]) == 0
    with np.load(output, allow_pickle=False) as data:
        np.testing.assert_allclose(data["embeddings"],
                                   classifier.embed([audio]), atol=1e-5)
