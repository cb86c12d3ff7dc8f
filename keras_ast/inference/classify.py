"""Files and arrays in, labels and timelines out: `classify` and `tag`.

The engine behind `ASTClassifier.classify` (what is in each clip: top-k
labels) and `ASTClassifier.tag` (what is where in a long recording: a
`keras_ast.inference.timeline.Timeline`). Inputs may be paths (decoded with
`keras_ast.load_audio`: mono, resampled to the model's rate) or host arrays
(which follow the rules of `keras_ast.inference.waveforms`); arrays are taken to be at
the model's rate, checked when the caller gives `sampling_rate` and with a
warning when not. Clips are scored in batches of at most `batch_size`
(`batch_plan`), so memory stays bounded whatever the number and length of
the inputs, and a compiling backend sees few shapes.
"""

import numbers
import os

import numpy as np

from keras_ast.inference.timeline import Timeline
from keras_ast.inference.timeline import median_filter
from keras_ast.inference.timeline import merge_events
from keras_ast.inference.timeline import window_starts
from keras_ast.inference.waveforms import check_waveforms
from keras_ast.inference.waveforms import rate_error
from keras_ast.inference.waveforms import to_float
from keras_ast.inference.waveforms import warn_caller


def _is_path(item):
    return isinstance(item, (str, bytes, os.PathLike))


def check_top_k(top_k):
    """Refuses a `top_k` that would keep no label: it is None or >= 1."""
    if top_k is not None and (isinstance(top_k, bool)
                              or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(
            f"top_k must be a whole number of at least 1 (or None for every "
            f"label), got {top_k!r}."
        )


def as_clips(inputs, sampling_rate, given_rate=None):
    """`(clips, paths, single)` from anything `classify` and `tag` take.

    Args:
        inputs: a path, a 1-D array, a 2-D `(batch, samples)` array, or a
            list of paths and 1-D arrays.
        sampling_rate: the model's rate; files are resampled to it.
        given_rate: the rate of array inputs, if the caller states it; an
            array without it is taken to be at `sampling_rate`, with a
            `UserWarning` (shown once per calling line by Python's default
            filter) saying so.

    Returns:
        A list of float32 1-D clips, the path of each (or None), and
        whether `inputs` was a single clip.
    """
    from keras_ast.data.audio_io import load_audio

    if given_rate is not None and int(given_rate) != int(sampling_rate):
        raise ValueError(rate_error(given_rate, sampling_rate))
    single = _is_path(inputs) or (
        not isinstance(inputs, (list, tuple)) and np.ndim(inputs) == 1)
    if single:
        inputs = [inputs]
    elif not isinstance(inputs, (list, tuple)):
        inputs = list(check_waveforms(inputs))  # the rows of a batch
    if len(inputs) == 0:
        raise ValueError("Expected audio, got an empty list.")
    if given_rate is None and not all(_is_path(item) for item in inputs):
        # An array carries no rate: one at 44.1 kHz would give confident,
        # wrong labels.
        warn_caller(
            f"Audio arrays given without sampling_rate= are taken to be at "
            f"the model's {int(sampling_rate)} Hz. Pass sampling_rate=<their "
            f"rate> to have it checked (keras_ast.resample converts other "
            "rates), or give file paths, which are decoded and resampled.")
    clips, paths = [], []
    for index, item in enumerate(inputs):
        if _is_path(item):
            clips.append(load_audio(item, sampling_rate))
            paths.append(os.fsdecode(item))
            continue
        clip = to_float(item)
        if clip.ndim != 1:
            raise ValueError(
                f"Input {index} has shape {clip.shape}; each input must be "
                "a path or one mono clip (samples,)."
            )
        clips.append(check_waveforms(clip))
        paths.append(None)
    return clips, paths, single


def batch_plan(count, batch_size, fixed_shapes):
    """How `count` slices go through the model: `[(first, rows, shape)]`.

    `shape` is the batch's row count as called; rows past `rows` are
    padding. On an eager backend the slices are spread evenly over the
    fewest batches of at most `batch_size` (18 at 8 make 6 + 6 + 6, no
    padding). With `fixed_shapes` (a backend that compiles each new input
    shape: JAX, TensorFlow), batches are full but for the last, whose shape
    is its rows rounded up to a power of two: at most log2(batch_size) + 1
    shapes ever compile, and only the last batch carries padding, less
    than half of it.

    Example:
    >>> batch_plan(18, 8, fixed_shapes=False)
    [(0, 6, 6), (6, 6, 6), (12, 6, 6)]
    >>> batch_plan(19, 8, fixed_shapes=True)
    [(0, 8, 8), (8, 8, 8), (16, 3, 4)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    batches = -(-count // batch_size)
    plan, first = [], 0
    for index in range(batches):
        left = count - first
        if fixed_shapes:
            rows = min(left, batch_size)
            shape = min(batch_size, 1 << (rows - 1).bit_length())
        else:
            rows = shape = -(-left // (batches - index))
        plan.append((first, rows, shape))
        first += rows
    return plan


def compiles_per_shape(classifier):
    """Whether each new input shape costs `classifier` a compile."""
    import keras

    return keras.config.backend() != "torch" or bool(classifier.jit_compile)


def score_windows(classifier, windows, batch_size):
    """Scores of `(clip, start, stop)` slices, `(len(windows), classes)`.

    Slices are gathered into `(rows, width)` batches with their lengths, so
    each slice scores as it would alone; `batch_plan` sets the batches
    (padding rows only where a backend compiles per shape).
    """
    from keras import ops

    width = max((stop - start for _, start, stop in windows), default=1)
    scores = []
    for first, rows, shape in batch_plan(len(windows), batch_size,
                                         compiles_per_shape(classifier)):
        batch = np.zeros((shape, width), np.float32)
        lengths = np.ones(shape, np.int32)  # padding rows: one sample
        for row, (clip, start, stop) in enumerate(
                windows[first:first + rows]):
            batch[row, :stop - start] = clip[start:stop]
            lengths[row] = stop - start
        logits = classifier.predict_on_batch(
            {"waveforms": batch, "lengths": lengths})
        scores.append(ops.convert_to_numpy(
            classifier.scores(logits))[:rows])
    if not scores:
        return np.zeros((0, classifier.num_classes), np.float32)
    return np.concatenate(scores).astype(np.float32)


def label_names(classifier):
    """The classifier's labels, or the class indices as strings."""
    if classifier.labels is not None:
        return list(classifier.labels)
    return [str(index) for index in range(classifier.num_classes)]


def top_labels(scores, labels, top_k=5, threshold=None):
    """`[(label, score)]` by score: the `top_k` best, or all >= threshold.

    Example:
    >>> top_labels(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], top_k=2)
    [('b', 0.7), ('c', 0.2)]
    """
    order = np.argsort(-scores, kind="stable")
    if threshold is not None:
        order = [i for i in order if scores[i] >= threshold]
    if top_k is not None:
        order = order[:top_k]
    return [(labels[i], float(scores[i])) for i in order]


def classify(classifier, inputs, top_k=5, threshold=None, batch_size=32,
             sampling_rate=None):
    """See `ASTClassifier.classify`."""
    check_top_k(top_k)
    converter = _converter(classifier)
    clips, _, single = as_clips(inputs, converter.sampling_rate,
                                sampling_rate)
    longest = max(clip.shape[0] for clip in clips)
    classifier.warn_if_too_long(longest)
    # Samples past the model's input are never used: cut them up front.
    windows = [(clip, 0, min(clip.shape[0], converter.num_samples))
               for clip in clips]
    scores = score_windows(classifier, windows, batch_size)
    labels = label_names(classifier)
    results = [top_labels(row, labels, top_k, threshold) for row in scores]
    return results[0] if single else results


def window_geometry(converter, window_seconds=None, hop_seconds=None):
    """`tag`'s `(window, hop)` in samples: by default the model's whole
    input and half of it; a window longer than the input is an error."""
    rate = converter.sampling_rate
    window = (converter.num_samples if window_seconds is None
              else int(round(window_seconds * rate)))
    if window > converter.num_samples:
        raise ValueError(
            f"window_seconds={window_seconds} is longer than the model's "
            f"input ({converter.num_samples / rate:.2f} s): the rest of each "
            "window would be cut. Use a shorter window."
        )
    hop = window // 2 if hop_seconds is None else int(round(hop_seconds
                                                            * rate))
    if window < 1 or hop < 1:
        raise ValueError(
            f"window_seconds={window_seconds} and hop_seconds={hop_seconds} "
            f"must each be at least one sample ({1 / rate:.6f} s)."
        )
    return window, hop


def tag(classifier, inputs, window_seconds=None, hop_seconds=None, top_k=3,
        threshold=0.3, median_filter_windows=1, batch_size=32,
        sampling_rate=None):
    """See `ASTClassifier.tag`."""
    check_top_k(top_k)
    converter = _converter(classifier)
    rate = converter.sampling_rate
    clips, paths, single = as_clips(inputs, rate, sampling_rate)
    window, hop = window_geometry(converter, window_seconds, hop_seconds)
    plans = []
    for clip in clips:
        starts = window_starts(clip.shape[0], window, hop)
        stops = np.minimum(starts + window, clip.shape[0])
        plans.append((starts, stops))
    # All windows of all recordings go through the model as batches.
    windows = [(clip, int(start), int(stop))
               for clip, (starts, stops) in zip(clips, plans)
               for start, stop in zip(starts, stops)]
    scores = score_windows(classifier, windows, batch_size)
    labels = label_names(classifier)
    timelines, offset = [], 0
    for clip, path, (starts, stops) in zip(clips, paths, plans):
        own = scores[offset:offset + len(starts)]
        offset += len(starts)
        begin, end = starts / rate, stops / rate
        events = merge_events(begin, end,
                              median_filter(own, median_filter_windows),
                              labels, top_k=top_k, threshold=threshold)
        timelines.append(Timeline(starts=begin, ends=end, scores=own,
                                  labels=labels, events=events,
                                  duration=clip.shape[0] / rate, path=path))
    return timelines[0] if single else timelines


def _converter(classifier):
    if classifier.preprocessor is None:
        raise ValueError(
            "This classifier takes features, not audio: give it a "
            "preprocessor (an ASTAudioConverter) to classify audio."
        )
    return classifier.preprocessor
