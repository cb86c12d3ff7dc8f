"""Spoken words made with espeak-ng, for tutorials, tests and smoke checks.

Real speech with no download: espeak-ng speaks, sox resamples to 16 kHz.
Both are system programs (`apt-get install espeak-ng sox`).
"""

import os
import shutil
import subprocess
import tempfile

import numpy as np

SAMPLING_RATE = 16000


def available():
    """Whether espeak-ng and sox are installed."""
    return bool(shutil.which("espeak-ng") and shutil.which("sox"))


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

    Example:
    >>> waveform = speak("yes", voice="en-us", speed=140)
    """
    if not available():
        raise RuntimeError(
            "espeak-ng and sox are needed to synthesise speech: "
            "`apt-get install espeak-ng sox`."
        )
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
