"""Files and arrays in, labels and timelines out: `classify` and `tag`.

The one way host audio goes through a classifier: inputs are checked
(`keras_ast.inference.waveforms`), files decoded ahead on threads
(`keras_ast.inference.files`), clips (or windows of them) scored in
batches by the model's `predict_on_batch`, and the scores turned into
labels or a `keras_ast.inference.timeline.Timeline`.
`ASTClassifier.classify`, `.tag` and `.predict_scores` call these
functions, and so does `keras-ast classify`.

The classifier is an argument (a scorer): anything with
- `preprocessor`: the converter, whose `sampling_rate`, `num_samples` and
  `max_length` give the input's geometry;
- `labels` (or None) and `num_classes`;
- `predict` and `predict_on_batch` (logits), and `scores(logits)` (the
  activation: sigmoid or softmax);
- `jit_compile` (whether each new input shape compiles on PyTorch);
- `token_keep`, settable, where `classify` and `tag` are given one.

Clips are scored in batches of at most `batch_size` (`batch_plan`), so
memory stays bounded whatever the number and length of the inputs, and a
compiling backend sees few shapes.
"""

import contextlib
import numbers

import numpy as np

from keras_ast.inference.files import decoded_files
from keras_ast.inference.timeline import Timeline
from keras_ast.inference.timeline import median_filter
from keras_ast.inference.timeline import merge_events
from keras_ast.inference.timeline import window_starts
from keras_ast.inference.waveforms import as_items
from keras_ast.inference.waveforms import count_rows
from keras_ast.inference.waveforms import is_path
from keras_ast.inference.waveforms import warn_if_too_long


def check_top_k(top_k):
    """Refuses a `top_k` that would keep no label: it is None or >= 1.

    Raises:
        ValueError: `top_k` is not a whole number of at least 1.
    """
    if top_k is not None and (isinstance(top_k, bool)
                              or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(
            f"top_k must be a whole number of at least 1 (or None for every "
            f"label), got {top_k!r}."
        )


def check_batch_size(batch_size):
    """Refuses a `batch_size` below 1.

    Raises:
        ValueError: `batch_size` is below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")


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

    Raises:
        ValueError: `batch_size` is below 1.

    Examples:
    >>> batch_plan(18, 8, fixed_shapes=False)
    [(0, 6, 6), (6, 6, 6), (12, 6, 6)]
    >>> batch_plan(19, 8, fixed_shapes=True)
    [(0, 8, 8), (8, 8, 8), (16, 3, 4)]
    """
    check_batch_size(batch_size)
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


def predict_scores(classifier, x, sampling_rate=None, batch_size=None,
                   verbose="auto", **kwargs):
    """See `ASTClassifier.predict_scores`."""
    from keras import ops

    rows = count_rows(x)
    if verbose == "auto" and rows is not None and (
            rows <= (batch_size or 32)):  # predict's default
        verbose = 0
    logits = classifier.predict(x, sampling_rate=sampling_rate,
                                batch_size=batch_size, verbose=verbose,
                                **kwargs)
    return ops.convert_to_numpy(classifier.scores(logits))


def label_names(classifier):
    """The classifier's labels, or the class indices as strings."""
    if classifier.labels is not None:
        return list(classifier.labels)
    return [str(index) for index in range(classifier.num_classes)]


def top_labels(scores, labels, top_k=5, threshold=None):
    """`[(label, score)]` by score: the `top_k` best, or all >= threshold.

    Examples:
    >>> top_labels(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], top_k=2)
    [('b', 0.7), ('c', 0.2)]
    """
    order = np.argsort(-scores, kind="stable")
    if threshold is not None:
        order = [i for i in order if scores[i] >= threshold]
    if top_k is not None:
        order = order[:top_k]
    return [(labels[i], float(scores[i])) for i in order]


def _progress(total, enabled, desc):
    if enabled and total > 1:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="file", desc=desc)
        except ImportError:
            pass
    return None


def _clips(items, sampling_rate, ahead, skip_errors, skipped, progress,
           desc):
    """`(index, path, clip)` of each input that decodes, in order.

    A file that does not decode raises its `AudioDecodeError`, or, with
    `skip_errors`, is appended to `skipped` as `(path, reason)`.
    """
    bar = _progress(len(items), progress, desc)
    try:
        for index, (path, clip, error) in enumerate(
                decoded_files(items, sampling_rate, ahead=ahead)):
            if bar is not None:
                bar.update(1)
            if error is not None:
                if not skip_errors:
                    raise error
                skipped.append((path, error.reason))
                continue
            yield index, path, clip
    finally:
        if bar is not None:
            bar.close()


def _scored(classifier, recordings, spans, batch_size, group_all):
    """`(index, path, clip, starts, stops, scores)` of each recording.

    `spans(clip)` gives a recording's window `(starts, stops)` in samples.
    The windows of consecutive recordings are scored together: of all of
    them when `group_all` (every clip is in memory already), else of
    recordings gathered until they hold `batch_size` windows, so that
    decoded files are not all held at once.
    """
    group, windows = [], 0
    for index, path, clip in recordings:
        starts, stops = spans(clip)
        group.append((index, path, clip, starts, stops))
        windows += len(starts)
        if not group_all and windows >= batch_size:
            yield from _score_group(classifier, group, batch_size)
            group, windows = [], 0
    if group:
        yield from _score_group(classifier, group, batch_size)


def _score_group(classifier, group, batch_size):
    windows = [(clip, int(start), int(stop))
               for _, _, clip, starts, stops in group
               for start, stop in zip(starts, stops)]
    scores = score_windows(classifier, windows, batch_size)
    offset = 0
    for index, path, clip, starts, stops in group:
        yield (index, path, clip, starts, stops,
               scores[offset:offset + len(starts)])
        offset += len(starts)


@contextlib.contextmanager
def token_keep_of(classifier, token_keep):
    """Runs the block with `classifier.token_keep` set to `token_keep`
    (None: unchanged), restoring the classifier's own afterwards."""
    own = getattr(classifier, "token_keep", None)
    if token_keep is None or token_keep == own:
        yield
        return
    classifier.token_keep = token_keep
    try:
        yield
    finally:
        classifier.token_keep = own


def result(results, skipped, single, skip_errors):
    """What `classify`, `tag` and `embed` return: the one result for one
    input, and `(results, skipped)` with `skip_errors`."""
    results = results[0] if single else results
    return (results, skipped) if skip_errors else results


def classify(classifier, inputs, top_k=5, threshold=None, batch_size=32,
             sampling_rate=None, skip_errors=False, progress=False,
             long_inputs=None, token_keep=None):
    """See `ASTClassifier.classify`; the arguments past its own:

    Args:
        classifier: the scorer (see the module doc).
        progress: show a progress bar over the inputs (tqdm, when more
            than one).
        long_inputs: optional list: `(path, seconds)` of each input longer
            than the model's input is appended to it, instead of the
            warning (path None for an array).
        token_keep: the classifier's `token_keep` for this call (None:
            its own).
    """
    with token_keep_of(classifier, token_keep):
        return _classify(classifier, inputs, top_k, threshold, batch_size,
                         sampling_rate, skip_errors, progress, long_inputs)


def _classify(classifier, inputs, top_k, threshold, batch_size,
              sampling_rate, skip_errors, progress, long_inputs):
    check_top_k(top_k)
    labels = label_names(classifier)
    whole = ScoredClips(classifier, converter_of(classifier), inputs,
                        batch_size, sampling_rate, skip_errors, progress,
                        long_inputs, "classify")
    results = [None] * len(whole.items)
    for index, scores in whole:
        results[index] = top_labels(scores, labels, top_k, threshold)
    return result(results, whole.skipped, whole.single, skip_errors)


class ScoredClips:
    """Each input's scores, as one clip cut to the model's input.

    The steps `classify` and `keras_ast.inference.embed` share: host
    audio checked (`as_items`), files decoded ahead on threads, a clip
    longer than the model's input cut to its start (a copy, so the decoded
    file is not held) with a warning, or recorded in `long_inputs` as
    `(path, seconds)`, and the clips scored in batches (`score_windows`),
    each as if alone. Iterating gives `(index, scores)` for each input
    that decoded, in order; then `skipped` lists the `(path, reason)` of
    those that did not (with `skip_errors`; else the first raises).

    Attributes:
        items: the inputs as `as_items` reads them.
        single: whether one input was given (not a list or batch).
        skipped: the skipped files, filled while iterating.
    """

    def __init__(self, scorer, converter, inputs, batch_size, sampling_rate,
                 skip_errors, progress, long_inputs, desc):
        check_batch_size(batch_size)
        self.converter = converter
        self.items, self.single = as_items(
            inputs, self.converter.sampling_rate, sampling_rate)
        self.skipped = []
        self._args = (scorer, batch_size, skip_errors, progress,
                      long_inputs, desc)

    def __iter__(self):
        scorer, batch_size, skip_errors, progress, long_inputs, desc = (
            self._args)
        converter = self.converter
        rate, limit = converter.sampling_rate, converter.num_samples

        def cut(recordings):
            for index, path, clip in recordings:
                if clip.shape[0] > limit:
                    if long_inputs is None:
                        warn_if_too_long(converter, clip.shape[0])
                    else:
                        long_inputs.append((path, clip.shape[0] / rate))
                    clip = clip[:limit].copy()
                yield index, path, clip

        def one_window(clip):
            return [0], [clip.shape[0]]

        recordings = cut(_clips(self.items, rate, 2 * batch_size,
                                skip_errors, self.skipped, progress, desc))
        for index, _, _, _, _, scores in _scored(
                scorer, recordings, one_window, batch_size,
                group_all=not any(is_path(item) for item in self.items)):
            yield index, scores[0]


def window_geometry(converter, window_seconds=None, hop_seconds=None):
    """`tag`'s `(window, hop)` in samples: by default the model's whole
    input and half of it.

    Raises:
        ValueError: a window longer than the model's input, or a window or
            hop shorter than one sample.
    """
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
        sampling_rate=None, skip_errors=False, progress=False,
        token_keep=None):
    """See `ASTClassifier.tag`; the arguments past its own:

    Args:
        classifier: the scorer (see the module doc).
        median_filter_windows: `ASTClassifier.tag`'s `median_filter`.
        progress: show a progress bar over the inputs (tqdm, when more
            than one).
        token_keep: the classifier's `token_keep` for this call (None:
            its own).
    """
    with token_keep_of(classifier, token_keep):
        return _tag(classifier, inputs, window_seconds, hop_seconds, top_k,
                    threshold, median_filter_windows, batch_size,
                    sampling_rate, skip_errors, progress)


def _tag(classifier, inputs, window_seconds, hop_seconds, top_k, threshold,
         median_filter_windows, batch_size, sampling_rate, skip_errors,
         progress):
    check_top_k(top_k)
    check_batch_size(batch_size)
    converter = converter_of(classifier)
    rate = converter.sampling_rate
    items, single = as_items(inputs, rate, sampling_rate)
    window, hop = window_geometry(converter, window_seconds, hop_seconds)

    def spans(clip):
        starts = window_starts(clip.shape[0], window, hop)
        return starts, np.minimum(starts + window, clip.shape[0])

    # A recording may be hours long: one decoded ahead is enough to
    # overlap decoding with the model, and more would hold hours of audio.
    skipped = []
    recordings = _clips(items, rate, 1, skip_errors, skipped, progress,
                        "tag")
    labels = label_names(classifier)
    results = [None] * len(items)
    for index, path, clip, starts, stops, scores in _scored(
            classifier, recordings, spans, batch_size,
            group_all=not any(is_path(item) for item in items)):
        begin, end = starts / rate, stops / rate
        events = merge_events(begin, end,
                              median_filter(scores, median_filter_windows),
                              labels, top_k=top_k, threshold=threshold)
        results[index] = Timeline(
            starts=begin, ends=end, scores=scores, labels=labels,
            events=events, duration=clip.shape[0] / rate, path=path)
    return result(results, skipped, single, skip_errors)


def converter_of(classifier):
    """The classifier's converter (its `preprocessor`).

    Raises:
        ValueError: the classifier has none (it takes features).
    """
    if classifier.preprocessor is None:
        raise ValueError(
            "This classifier takes features, not audio: give it a "
            "preprocessor (an ASTAudioConverter) to classify audio."
        )
    return classifier.preprocessor
