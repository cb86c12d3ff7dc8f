"""`keras_ast.datasets`: the espeak-ng keyword set as class folders.

No Keras model is involved (numpy, espeak-ng and sox only), so one backend
would do; it runs under every one like the rest of the suite.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import require_speech_synthesis

from keras_ast import datasets
from keras_ast.datasets import spoken_keywords

WORDS = ["yes", "no"]
VOICES = {"train": ["en"], "test": ["en-us+f3"]}


def make(directory, **options):
    return datasets.make_keyword_dataset(
        directory, words=WORDS, voices=VOICES, speeds=[160], pitches=[50],
        workers=2, **options)


def test_writes_class_folders_and_resumes(tmp_path):
    require_speech_synthesis()
    assert make(tmp_path) == {"train": 2, "test": 2}
    for split, (voice,) in VOICES.items():
        assert sorted(os.listdir(tmp_path / split)) == sorted(WORDS)
        for word in WORDS:
            name = f"{voice.replace('+', '-')}_160_50.wav"
            assert os.listdir(tmp_path / split / word) == [name]
            info = soundfile.info(tmp_path / split / word / name)
            assert (info.samplerate, info.channels, info.frames,
                    info.subtype) == (16000, 1, 16000, "PCM_16")
    path = tmp_path / "train" / "yes" / "en_160_50.wav"
    first = path.read_bytes()
    # A file already there is kept; a missing one comes back the same.
    (tmp_path / "test" / "no" / "en-us-f3_160_50.wav").unlink()
    again = tmp_path / "test" / "no" / "en-us-f3_160_50.wav"
    assert make(tmp_path) == {"train": 2, "test": 2}
    assert path.read_bytes() == first
    assert again.exists()
    assert make(tmp_path / "copy")["test"] == 2
    assert (tmp_path / "copy" / "train" / "yes" /
            "en_160_50.wav").read_bytes() == first
    assert not [name for _, _, names in os.walk(tmp_path)
                for name in names if name.startswith(".tmp-")]


def test_noise_share_and_clip_length(tmp_path):
    require_speech_synthesis()
    make(tmp_path / "clean", noise_share=0.0, clip_seconds=1.5)
    clip, rate = soundfile.read(tmp_path / "clean" / "train" / "no" /
                                "en_160_50.wav", dtype="float32")
    assert (rate, len(clip)) == (16000, 24000)
    assert np.abs(clip).max() > 0.05  # the word is there
    assert np.sum(clip == 0) > 4000  # digital silence around it
    make(tmp_path / "noisy", noise_share=1.0, snr_db=(10.0, 10.0))
    noisy, _ = soundfile.read(tmp_path / "noisy" / "train" / "no" /
                              "en_160_50.wav", dtype="float32")
    assert np.sum(noisy == 0) < 100


def test_speak_and_refusals(tmp_path):
    require_speech_synthesis()
    waveform = datasets.speak("yes", voice="en-us", speed=140)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert 2000 < len(waveform) < 16000
    with pytest.raises(ValueError, match="noise_share"):
        make(tmp_path, noise_share=1.5)
    with pytest.raises(ValueError, match="words"):
        datasets.make_keyword_dataset(tmp_path, words=[])
    with pytest.raises(TypeError, match="split names"):
        datasets.make_keyword_dataset(tmp_path, voices=["en"])
    assert not os.listdir(tmp_path)


def test_missing_programs_raise_a_typed_error(monkeypatch, tmp_path):
    monkeypatch.setattr(spoken_keywords.shutil, "which", lambda name: None)
    assert not spoken_keywords.available()
    with pytest.raises(datasets.SpeechUnavailableError, match="espeak-ng"):
        datasets.speak("yes")
    with pytest.raises(RuntimeError, match="apt-get install"):
        make(tmp_path)


def test_import_loads_no_keras():
    code = ("import sys\nimport keras_ast.datasets as d\n"
            "d.make_keyword_dataset\n"
            "print([m for m in ('keras', 'tensorflow', 'jax', 'torch') "
            "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
