"""Spoken keywords made with espeak-ng: a data set with no download.

espeak-ng speaks, sox resamples to 16 kHz; both are system programs
(`apt-get install espeak-ng sox`). `speak` synthesises one waveform;
`make_keyword_dataset` writes a small Speech Commands style set as class
folders, one folder per split, with each voice in one split only, so that
the test split holds voices a model never heard:

    DIRECTORY/{train,validation,test}/<word>/<voice>_<speed>_<pitch>.wav

Examples:
>>> from keras_ast.datasets import make_keyword_dataset
>>> make_keyword_dataset("keywords", words=["yes", "no"])
{'train': 240, 'validation': 48, 'test': 72}
"""

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_ast.utils.files import atomic_path

SAMPLING_RATE = 16000
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop",
         "go")
# espeak-ng voices and variants (accents, male and female timbres), each
# in one split.
VOICES = {
    "train": ("en", "en-us", "en+m3", "en+f2", "en-us+m5", "en+f4",
              "en-gb-scotland", "en-us+f2", "en+m1", "en-029"),
    "validation": ("en+m7", "en-us+f4"),
    "test": ("en-gb-x-rp", "en-us+f3", "en+m4"),
}
SPEEDS = (110, 140, 170, 200)
PITCHES = (30, 50, 70)


class SpeechUnavailableError(RuntimeError):
    """espeak-ng or sox is not installed.

    `speak` and `make_keyword_dataset` raise it before running anything;
    `apt-get install espeak-ng sox` installs both on Debian and Ubuntu.
    """


def available():
    """Whether espeak-ng and sox are installed."""
    return bool(shutil.which("espeak-ng") and shutil.which("sox"))


def _require_programs():
    if not available():
        raise SpeechUnavailableError(
            "espeak-ng and sox are needed to synthesise speech: "
            "`apt-get install espeak-ng sox`."
        )


def speak(text, voice="en", speed=160, pitch=50):
    """Synthesises `text` as a mono float32 waveform at 16 kHz.

    Args:
        text: what to say.
        voice: an espeak-ng voice (`espeak-ng --voices` lists them), e.g.
            `"en"`, `"en-us"`, `"en+f3"`.
        speed: words per minute.
        pitch: 0 to 99.

    Returns:
        float32 array `(samples,)` in [-1, 1].

    Raises:
        SpeechUnavailableError: espeak-ng or sox is not installed.
        subprocess.CalledProcessError: espeak-ng refused the arguments
            (an unknown voice, for instance).

    Examples:
        >>> waveform = speak("yes", voice="en-us", speed=140)
    """
    _require_programs()
    with tempfile.TemporaryDirectory() as directory:
        raw = os.path.join(directory, "raw.wav")
        resampled = os.path.join(directory, "speech.raw")
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
             "-w", raw, text],
            check=True, capture_output=True,
        )
        # Headerless float32 output: read back without any audio library.
        subprocess.run(
            ["sox", raw, "-r", str(SAMPLING_RATE), "-c", "1", "-e",
             "floating-point", "-b", "32", "-t", "raw", resampled],
            check=True, capture_output=True,
        )
        return np.fromfile(resampled, dtype="<f4").astype(np.float32)


def _render(word, voice, speed, pitch, rng, num_samples, noise_share,
            snr_db):
    """One clip: the word at a random offset, with noise in a share of
    the clips."""
    speech = speak(word, voice=voice, speed=speed,
                   pitch=pitch)[:num_samples]
    clip = np.zeros(num_samples, np.float32)
    offset = int(rng.integers(0, num_samples - len(speech) + 1))
    clip[offset:offset + len(speech)] = speech
    if noise_share < 1 and rng.random() >= noise_share:
        return clip
    power = float(np.mean(speech ** 2)) + 1e-12
    snr = rng.uniform(*snr_db)
    scale = np.sqrt(power / 10 ** (snr / 10))
    noise = rng.standard_normal(num_samples) * scale
    return np.clip(clip + noise, -1.0, 1.0).astype(np.float32)


def make_keyword_dataset(directory, words=WORDS, voices=VOICES,
                         speeds=SPEEDS, pitches=PITCHES, *, noise_share=1.0,
                         snr_db=(10.0, 40.0), clip_seconds=1.0, seed=0,
                         workers=8):
    """Writes spoken keywords as class folders, one folder per split.

    Every word is spoken by every voice of a split at every speed and
    pitch: `len(speeds) * len(pitches)` clips per word and voice, each
    `clip_seconds` long, the word at a random offset (cut at the clip's
    end), as 16-bit 16 kHz WAV files
    `directory/<split>/<word>/<voice>_<speed>_<pitch>.wav` (`+` in a voice
    name written `-`). Each file is written atomically and a file already
    there is kept, so an interrupted call resumes where it stopped, and
    the same arguments give the same clips.

    Args:
        directory: the folder to write (created if needed).
        words: the words, one class folder each.
        voices: split name -> espeak-ng voices of that split.
        speeds: words per minute, one clip each.
        pitches: espeak-ng pitches (0 to 99), one clip each.
        noise_share: the share of the clips (0 to 1) that get white noise;
            the others keep digital silence around the word.
        snr_db: `(low, high)`: a noisy clip's signal-to-noise ratio in dB,
            drawn uniformly.
        clip_seconds: the length of every clip.
        seed: the offsets and the noise follow from it.
        workers: espeak-ng processes run at once.

    Returns:
        `{split: number of clips}` in the order of `voices`.

    Raises:
        SpeechUnavailableError: espeak-ng or sox is not installed.
        ValueError: `noise_share` outside [0, 1], or no words.
        TypeError: `voices` is not a mapping.

    Examples:
        >>> make_keyword_dataset("keywords", words=["yes", "no"],
        ...                      voices={"train": ["en"], "test": ["en-us"]},
        ...                      speeds=[160], pitches=[50])
        {'train': 2, 'test': 2}
    """
    import soundfile

    if not 0 <= noise_share <= 1:
        raise ValueError(f"noise_share must be in [0, 1], got {noise_share}")
    if not words:
        raise ValueError("words is empty: give at least one word")
    if not hasattr(voices, "items"):
        raise TypeError(
            "voices maps split names to voices, e.g. {\"train\": [\"en\"], "
            f"\"test\": [\"en-us\"]}}; got {type(voices).__name__}")
    _require_programs()
    directory = os.fspath(directory)
    num_samples = int(round(clip_seconds * SAMPLING_RATE))
    jobs = []
    for split, split_voices in voices.items():
        for word in words:
            for voice in split_voices:
                for speed in speeds:
                    for pitch in pitches:
                        name = f"{voice}_{speed}_{pitch}.wav".replace("+", "-")
                        path = os.path.join(directory, split, word, name)
                        jobs.append((split, word, voice, speed, pitch, path))

    def write(index_job):
        index, (split, word, voice, speed, pitch, path) = index_job
        if not os.path.exists(path):
            # One generator per clip, from its place in the job list: the
            # clips do not depend on the order the threads finish in.
            rng = np.random.default_rng(seed * len(jobs) + index)
            clip = _render(word, voice, speed, pitch, rng, num_samples,
                           noise_share, snr_db)
            with atomic_path(path) as staging:  # never a half-written file
                soundfile.write(staging, clip, SAMPLING_RATE,
                                subtype="PCM_16", format="WAV")
        return split

    counts = {split: 0 for split in voices}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for split in pool.map(write, enumerate(jobs)):
            counts[split] += 1
    return counts
