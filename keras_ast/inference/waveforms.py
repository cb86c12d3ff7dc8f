"""Host audio in: the rules that make it mono float32 clips or refuse it.

Every host input that reaches a model passes through here once: `predict`
through `host_inputs`, `classify` and `tag` through `as_items` (and a
converter called on NumPy through `check_waveforms` and `pad_waveforms`).
No input whose meaning is ambiguous is guessed:
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
  than `PEAK_WARNING`) warns, since it usually means integer samples
  stored as floats.
- no samples (an empty clip, an empty list, a `(n, 0)` batch), NaN and
  infinite samples are errors.
- arrays carry no rate: a stated `sampling_rate` must be the model's, and
  arrays without one are taken to be at the model's rate, with a warning.
- a clip longer than the model's input is cut to it, with a warning (once
  per converter) that points to `tag`.

Warnings are `UserWarning`s raised at the user's line (`warn_caller`), so
Python's default filter shows each once per line.
"""

import os
import sys
import warnings
import weakref

import numpy as np

FRAME_LENGTH = 400  # one 25 ms frame at 16 kHz: the shortest useful clip
PEAK_WARNING = 2.0
MIX_DOWN = ("Mix multichannel audio down to mono first (e.g. "
            "`waveform.mean(axis=-1)` for a (samples, channels) array), or "
            "read files with keras_ast.load_audio, which does it.")
EMPTY_LIST = "Expected audio, got an empty list."

# Converters whose long-clip warning was given: once each, not per call.
_warned_too_long = weakref.WeakSet()


def rate_error(given, expected):
    """The message for audio at another sampling rate than the model's."""
    return (
        f"Audio sampled at {given} Hz was given to a model that expects "
        f"{expected} Hz. Resample it first: "
        f"`keras_ast.resample(waveform, {given}, {expected})`, or read files "
        "with `keras_ast.load_audio(path)`, which resamples."
    )


def check_rate(given, expected):
    """Refuses a stated rate `given` (None: not stated) other than
    `expected`.

    Raises:
        ValueError: the rates differ; the message names the resampler.
    """
    if given is not None and int(given) != int(expected):
        raise ValueError(rate_error(given, expected))


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

    Raises:
        ValueError: the samples are not numbers, or unsigned integers
            other than uint8.

    Examples:
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
        # A NaN or inf makes the peak non-finite; `_check_finite` names it.
        peak = max(abs(float(audio.max())), abs(float(audio.min())))
        if np.isfinite(peak) and peak > PEAK_WARNING:
            warn_caller(
                f"Float audio peaks at {peak:.1f}, far above full scale "
                "(1.0): is it integer PCM stored as floats? Divide int16 "
                "samples by 32768, or pass the integer array itself."
            )
    return audio


def _refuse_empty_list(items):
    if isinstance(items, (list, tuple)) and len(items) == 0:
        raise ValueError(EMPTY_LIST)


def check_waveforms(waveforms):
    """Checks a host clip or batch by the module's rules; returns float32.

    Args:
        waveforms: `(samples,)` or `(batch, samples)`, float or integer.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: an empty input, another rank, a `(samples, channels)`
            layout, or NaN or infinite samples.

    Examples:
    >>> check_waveforms(np.zeros((441000, 2), np.float32))
    Traceback (most recent call last):
    ValueError: ... looks like (samples, channels) ...
    """
    _refuse_empty_list(waveforms)
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


def check_clip(clip, index=None):
    """One mono clip of a list, checked: float32 `(samples,)`.

    Args:
        clip: a 1-D array (or list of numbers), float or integer PCM.
        index: its place in the caller's list, named in errors.

    Raises:
        ValueError: not 1-D, empty, or NaN or infinite samples.
    """
    clip = to_float(clip)
    name = "The clip" if index is None else f"Input {index}"
    if clip.ndim != 1:
        raise ValueError(
            f"{name} has shape {clip.shape}; each clip of a list must be "
            f"mono and 1-D (samples,). {MIX_DOWN}"
        )
    if clip.shape[0] == 0:
        raise ValueError(f"{name} is empty (no samples).")
    return _check_finite(clip)


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

    Each clip goes through the module's rules (`check_clip`).

    Args:
        waveforms: a list of 1-D arrays (or lists of numbers).

    Returns:
        `(batch, lengths)`: a float32 array `(len(waveforms), longest)`
        zero-padded at the end, and an int32 array with each clip's length.

    Raises:
        ValueError: an empty list, or a clip `check_clip` refuses.

    Examples:
        >>> batch, lengths = pad_waveforms([np.zeros(16000), np.zeros(8000)])
        >>> batch.shape, lengths.tolist()
        ((2, 16000), [16000, 8000])
    """
    if len(waveforms) == 0:
        raise ValueError(EMPTY_LIST)
    clips = [check_clip(clip, index) for index, clip in enumerate(waveforms)]
    lengths = np.array([clip.shape[0] for clip in clips], dtype=np.int32)
    batch = np.zeros((len(clips), int(lengths.max())), np.float32)
    for index, clip in enumerate(clips):
        batch[index, : clip.shape[0]] = clip
    return batch, lengths


def warn_if_too_long(converter, num_samples):
    """Warns, once per converter, that a clip is cut to the model's input.

    Args:
        converter: the model's converter (`sampling_rate`, `num_samples`,
            `max_length`).
        num_samples: the clip's length.
    """
    limit = converter.num_samples
    if num_samples <= limit or converter in _warned_too_long:
        return
    _warned_too_long.add(converter)
    rate = converter.sampling_rate
    warn_caller(
        f"A clip of {num_samples / rate:.2f} s is longer than the "
        f"model's input ({converter.max_length} frames, "
        f"{limit / rate:.2f} s): only its first {limit / rate:.2f} s "
        "are used. For long recordings use classifier.tag(...), which "
        "scores every window.")


def host_inputs(x, converter, sampling_rate=None):
    """What `predict` runs: host audio checked and batched.

    Args:
        x: a 1-D clip, a `(batch, samples)` array, a list of 1-D clips of
            any lengths, or a dict `{"waveforms": ..., "lengths": ...}`.
            Anything else (tensors, a dataset, features) passes unchanged.
        converter: the model's converter, or None for a features-in model
            (then `x` passes unchanged).
        sampling_rate: the rate of `x` if the caller states it.

    Returns:
        A float32 `(batch, samples)` array, or a dict with one and the
        `lengths` (a list of clips is zero-padded with its lengths).

    Raises:
        ValueError: by the module's rules.
    """
    if converter is None:
        return x
    check_rate(sampling_rate, converter.sampling_rate)
    _refuse_empty_list(x)
    if isinstance(x, (list, tuple)) and np.ndim(x[0]) == 1:
        waveforms, lengths = pad_waveforms(x)
        warn_if_too_long(converter, int(lengths.max()))
        return {"waveforms": waveforms, "lengths": lengths}
    if isinstance(x, dict) and "waveforms" in x:
        x = dict(x)
        x["waveforms"] = _batched(check_waveforms(x["waveforms"]))
        longest = (np.max(x["lengths"]) if x.get("lengths") is not None
                   else x["waveforms"].shape[-1])
        warn_if_too_long(converter, int(longest))
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        waveforms = _batched(check_waveforms(x))
        warn_if_too_long(converter, waveforms.shape[-1])
        return waveforms
    return x


def _batched(waveforms):
    return waveforms[None, :] if waveforms.ndim == 1 else waveforms


def count_rows(x):
    """Clips in host inputs `x` (None for a dataset or unknown input)."""
    if isinstance(x, dict):
        x = x.get("waveforms", x.get("features"))
    if isinstance(x, (list, tuple)):
        return 1 if len(x) and np.ndim(x[0]) == 0 else len(x)
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) == 0:
        return None
    return 1 if len(shape) == 1 else int(shape[0])


def is_path(item):
    """Whether `item` names a file (str, bytes or `os.PathLike`)."""
    return isinstance(item, (str, bytes, os.PathLike))


def as_items(inputs, sampling_rate, given_rate=None):
    """`(items, single)`: what `classify` and `tag` take, as a list.

    Args:
        inputs: a path, a 1-D clip, a `(batch, samples)` array, or a list
            of paths and 1-D clips.
        sampling_rate: the model's rate.
        given_rate: the rate of array inputs, if the caller states it; an
            array without it is taken to be at `sampling_rate`, with a
            `UserWarning` saying so.

    Returns:
        A list with, for each input, its path (as given) or its clip
        (checked float32 `(samples,)`), and whether `inputs` was a single
        input rather than a list or batch.

    Raises:
        ValueError: another stated rate, an empty input, or a clip the
            module's rules refuse.

    Examples:
    >>> items, single = as_items("dog.wav", 16000)
    >>> items, single
    (['dog.wav'], True)
    """
    check_rate(given_rate, sampling_rate)
    _refuse_empty_list(inputs)
    if is_path(inputs):
        return [inputs], True
    if not isinstance(inputs, (list, tuple)):
        clips = check_waveforms(inputs)
        single = clips.ndim == 1
        items = [clips] if single else list(clips)  # the rows of a batch
    else:
        single = False
        items = [item if is_path(item) else check_clip(item, index)
                 for index, item in enumerate(inputs)]
    if given_rate is None and not all(is_path(item) for item in items):
        # An array carries no rate: one at 44.1 kHz would give confident,
        # wrong labels.
        warn_caller(
            f"Audio arrays given without sampling_rate= are taken to be at "
            f"the model's {int(sampling_rate)} Hz. Pass sampling_rate=<their "
            f"rate> to have it checked (keras_ast.resample converts other "
            "rates), or give file paths, which are decoded and resampled.")
    return items, single
