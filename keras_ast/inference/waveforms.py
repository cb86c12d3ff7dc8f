"""Host audio arrays in: the rules that make them mono float32 or refuse them.

Every host array that reaches a converter or a classifier (`predict`,
`classify`, `tag`, a converter called on NumPy) passes through here, so
that no input whose meaning is ambiguous is guessed:
- layout: a 1-D array is one clip; a 2-D array is `(batch, samples)`, one
  mono clip a row. A 2-D array whose second axis is shorter than one frame
  (400 samples) while its first is longer looks like `soundfile.read`'s
  `(samples, channels)` and is refused. `(channels, samples)` stereo cannot
  be told from a batch of clips: mix multichannel audio down first
  (`waveform.mean(axis=-1)` for `(samples, channels)`, or
  `keras_ast.load_audio`, which does it).
- integer PCM is scaled by its type's full scale, as `soundfile` and
  `librosa` do: int16 / 32768, int32 / 2**31, int8 / 128, uint8 as
  (x - 128) / 128. Float audio is taken as is; a peak far above 1 (more
  than `PEAK_WARNING`) warns once, since it usually means integer samples
  stored as floats.
- no samples (an empty clip, an empty list, a `(n, 0)` batch), NaN and
  infinite samples are errors.
"""

import os
import sys
import warnings

import numpy as np

FRAME_LENGTH = 400  # one 25 ms frame at 16 kHz: the shortest useful clip
PEAK_WARNING = 2.0
MIX_DOWN = ("Mix multichannel audio down to mono first (e.g. "
            "`waveform.mean(axis=-1)` for a (samples, channels) array), or "
            "read files with keras_ast.load_audio, which does it.")


def rate_error(given, expected):
    """The message for audio at another sampling rate than the model's."""
    return (
        f"Audio sampled at {given} Hz was given to a model that expects "
        f"{expected} Hz. Resample it first: "
        f"`keras_ast.resample(waveform, {given}, {expected})`, or read files "
        "with `keras_ast.load_audio(path)`, which resamples."
    )


def warn_caller(message):
    """A `UserWarning` that points at the user's line.

    That is the first frame outside keras_ast, Keras and its backends,
    however deep in them the warning starts (Keras' `predict` calls the
    model from its own loop); Python's default filter then shows it once
    per such line.
    """
    packages = tuple(
        os.path.dirname(os.path.abspath(sys.modules[name].__file__)) + os.sep
        for name in (__name__.partition(".")[0], "keras", "tensorflow",
                     "jax", "torch")
        if getattr(sys.modules.get(name), "__file__", None))
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(packages):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def to_float(audio):
    """Samples as float32: integer PCM scaled by full scale, floats as is.

    Example:
    >>> to_float(np.array([-32768, 16384], np.int16)).tolist()
    [-1.0, 0.5]
    """
    audio = np.asarray(audio)
    kind = audio.dtype.kind
    if kind == "b" or kind not in "iuf":
        raise ValueError(
            f"Audio samples must be numbers, got dtype {audio.dtype}."
        )
    if kind == "u":
        if audio.dtype != np.uint8:
            raise ValueError(
                f"Unsigned {audio.dtype} audio has no standard scale; only "
                "uint8 PCM is read (as (x - 128) / 128)."
            )
        return ((audio.astype(np.float32) - 128.0) / 128.0)
    if kind == "i":
        scale = float(np.iinfo(audio.dtype).max) + 1.0
        return (audio.astype(np.float64) / scale).astype(np.float32)
    audio = audio.astype(np.float32, copy=False)
    if audio.size:
        # Two reductions, no copies: this runs on every call of a model.
        # A NaN or inf makes the peak non-finite; `check_waveforms` names it.
        peak = max(abs(float(audio.max())), abs(float(audio.min())))
        if np.isfinite(peak) and peak > PEAK_WARNING:
            warn_caller(
                f"Float audio peaks at {peak:.1f}, far above full scale "
                "(1.0): is it integer PCM stored as floats? Divide int16 "
                "samples by 32768, or pass the integer array itself."
            )
    return audio


def check_waveforms(waveforms):
    """Checks a host clip or batch by the module's rules; returns float32.

    Args:
        waveforms: `(samples,)` or `(batch, samples)`, float or integer.

    Returns:
        float32 array of the same shape.

    Example:
    >>> check_waveforms(np.zeros((441000, 2), np.float32))
    Traceback (most recent call last):
    ValueError: ... looks like (samples, channels) ...
    """
    if isinstance(waveforms, (list, tuple)) and len(waveforms) == 0:
        raise ValueError("Expected audio, got an empty list.")
    waveforms = to_float(waveforms)
    if waveforms.ndim not in (1, 2):
        raise ValueError(
            "Expected mono waveforms of shape (batch, samples) or (samples,), "
            f"got shape {waveforms.shape}. {MIX_DOWN}"
        )
    if waveforms.ndim == 2:
        rows, columns = waveforms.shape
        if columns < FRAME_LENGTH < rows:
            raise ValueError(
                f"An array of shape {waveforms.shape} looks like "
                f"(samples, channels) audio ({rows} samples of {columns} "
                "channels), not a batch of (batch, samples) clips: 2-D input "
                f"is read as one mono clip a row. {MIX_DOWN}"
            )
    if waveforms.size == 0:
        raise ValueError(
            f"Expected audio samples, got an empty array of shape "
            f"{waveforms.shape}."
        )
    return _check_finite(waveforms)


def _check_finite(waveforms):
    finite = np.isfinite(waveforms)
    if not finite.all():
        bad = np.argwhere(~finite)[0].tolist()
        raise ValueError(
            "Waveforms contain NaN or infinite samples (first at index "
            f"{bad}, value {waveforms[tuple(bad)]}). Check the decoder or "
            "the audio file."
        )
    return waveforms


def pad_waveforms(waveforms):
    """Pads a list of 1-D clips into one batch.

    Each clip goes through the module's rules (integer PCM scaled, mono,
    not empty).

    Args:
        waveforms: a list of 1-D arrays (or lists of numbers).

    Returns:
        `(batch, lengths)`: a float32 array `(len(waveforms), longest)`
        zero-padded at the end, and an int32 array with each clip's length.

    Example:
    >>> batch, lengths = pad_waveforms([np.zeros(16000), np.zeros(8000)])
    >>> batch.shape, lengths.tolist()
    ((2, 16000), [16000, 8000])
    """
    if len(waveforms) == 0:
        raise ValueError("Expected at least one waveform, got an empty list.")
    clips = []
    for index, clip in enumerate(waveforms):
        clip = to_float(clip)
        if clip.ndim != 1:
            raise ValueError(
                "Each waveform in a list must be mono and 1-D (samples,); "
                f"waveform {index} has shape {clip.shape}. {MIX_DOWN}"
            )
        if clip.shape[0] == 0:
            raise ValueError(f"Waveform {index} of the list is empty.")
        clips.append(clip)
    lengths = np.array([clip.shape[0] for clip in clips], dtype=np.int32)
    batch = np.zeros((len(clips), int(lengths.max())), np.float32)
    for index, clip in enumerate(clips):
        batch[index, : clip.shape[0]] = clip
    # Not `check_waveforms`: many short clips are no (samples, channels).
    return _check_finite(batch), lengths
