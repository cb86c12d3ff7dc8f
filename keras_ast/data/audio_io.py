"""Decoding audio files into the mono float32 16 kHz waveforms AST reads.

`soundfile` (libsndfile) decodes WAV, FLAC, OGG/Vorbis, Opus and MP3 (the
libsndfile that soundfile >= 0.12 bundles reads MP3); channels are averaged
to mono and `soxr` resamples (high quality) when the file has another rate.
`tensorflow_io`, where it is installed and works, is tried for files that
libsndfile does not read; it is never required.
"""

import collections
import importlib.util
import itertools
import os

import numpy as np

SAMPLING_RATE = 16000
# Extensions found in class folders: what libsndfile decodes.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                    ".aif", ".aiff")


class AudioDecodeError(ValueError):
    """A file that is not readable audio (or holds no usable samples).

    Attributes:
        path: the file.
        reason: why, in a few words.
    """

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"Could not decode {self.path}: {reason}")


def _read_soundfile(path):
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return audio, int(rate)


def _read_tensorflow_io(path):
    """`(frames, channels) float32, rate` with tensorflow_io, or None."""
    if importlib.util.find_spec("tensorflow_io") is None:
        return None
    try:
        import tensorflow_io as tfio

        tensor = tfio.audio.AudioIOTensor(path)
        audio = tensor.to_tensor().numpy()
        rate = int(tensor.rate.numpy())
    except Exception:  # an unusable build, or a file it does not read
        return None
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio / float(np.iinfo(audio.dtype).max + 1)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    return audio, rate


def to_mono(audio):
    """`(frames, channels)` -> `(frames,)` float32: the mean of channels."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.shape[1] == 1:
        return np.ascontiguousarray(audio[:, 0])
    return audio.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(audio, rate, sampling_rate=SAMPLING_RATE):
    """Resamples a waveform to `sampling_rate`, with soxr's "HQ" quality.

    Args:
        audio: a waveform `(samples,)` (or `(samples, channels)`) at `rate`.
        rate: the rate of `audio`, in Hz.
        sampling_rate: the wanted rate, in Hz (16000, AST's, by default).

    Returns:
        float32 array; `audio` as float32 when the rates are equal.

    Examples:
        >>> resample(np.zeros(8000, "float32"), 8000).shape
        (16000,)
    """
    audio = np.asarray(audio, dtype=np.float32)
    if int(rate) == int(sampling_rate):
        return audio
    import soxr

    return np.asarray(
        soxr.resample(audio, int(rate), int(sampling_rate), quality="HQ"),
        dtype=np.float32,
    )


def load_audio(path, sampling_rate=SAMPLING_RATE):
    """An audio file as a mono float32 waveform at `sampling_rate`.

    Args:
        path: a WAV, FLAC, OGG (Vorbis or Opus) or MP3 file (or any other
            format libsndfile reads).
        sampling_rate: the wanted rate; other rates are resampled with soxr.

    Returns:
        float32 array `(samples,)`.

    Raises:
        AudioDecodeError: the file is missing or empty (0 bytes), does not
            decode, holds no samples, or holds NaN or infinite values.

    Examples:
        >>> import os, tempfile
        >>> import soundfile
        >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
        >>> tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
        >>> soundfile.write(path, tone, 8000)  # one second at 8 kHz
        >>> waveform = load_audio(path)
        >>> waveform.dtype, waveform.shape
        (dtype('float32'), (16000,))
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioDecodeError(path, "no such file")
    if os.path.getsize(path) == 0:
        # libsndfile says "Format not recognised": the file is simply empty.
        raise AudioDecodeError(path, "empty file (0 bytes)")
    try:
        audio, rate = _read_soundfile(path)
    except Exception as error:  # libsndfile's errors differ by version
        fallback = _read_tensorflow_io(path)
        if fallback is None:
            # LibsndfileError's text repeats the path: keep its reason.
            reason = getattr(error, "error_string", None) or (
                f"{type(error).__name__}: {error}"
            )
            raise AudioDecodeError(path, reason) from None
        audio, rate = fallback
    if audio.size == 0:
        raise AudioDecodeError(path, "empty audio (no samples)")
    if rate <= 0:
        raise AudioDecodeError(path, f"invalid sampling rate {rate}")
    audio = to_mono(audio)
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError(path, "holds NaN or infinite samples")
    try:
        audio = resample(audio, rate, sampling_rate)
    except Exception as error:
        raise AudioDecodeError(
            path, f"resampling {rate} Hz -> {sampling_rate} Hz failed: "
            f"{type(error).__name__}: {error}"
        ) from None
    if audio.shape[0] == 0:
        raise AudioDecodeError(
            path, f"empty audio after resampling to {sampling_rate} Hz"
        )
    return audio


def in_order(submit, items, window):
    """`(item, future)` for each of `items`, in their order.

    `submit(item)` starts the item's work on a pool and returns its future;
    at most `window` items are submitted past the one last yielded, so a
    long list holds a bounded number of decoded files, and the pool works
    on the next ones while the caller uses this one.

    Examples:
    >>> with concurrent.futures.ThreadPoolExecutor(2) as pool:
    ...     for path, future in in_order(
    ...             lambda path: pool.submit(load_audio, path), paths, 4):
    ...         audio = future.result()
    """
    items = iter(items)
    pending = collections.deque(
        (item, submit(item)) for item in itertools.islice(items, window))
    while pending:
        item, future = pending.popleft()
        for following in itertools.islice(items, 1):
            pending.append((following, submit(following)))
        yield item, future
