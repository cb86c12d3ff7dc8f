"""Pictures of what a model hears and finds.

Six functions draw with matplotlib (the `plot` extra,
`pip install keras-ast[plot]`) and return a `matplotlib.figure.Figure`:
- `spectrogram`: the log-mel features of a waveform (or features) over
  time in seconds;
- `timeline`: a `keras_ast.inference.timeline.Timeline` as a
  class-by-time heat map of window scores, with the merged events outlined;
- `attention`: the last layer's [CLS] attention over the patch grid, laid
  over the spectrogram;
- `file_report`: a spectrogram above a timeline on one time axis (what
  `keras-ast ... --plot out.png` saves);
- `confusion_matrix`: true classes against predicted ones (what
  `keras-ast evaluate` saves for single-label data);
- `reconstruction`: a clip, the patches an `ASTPretrainer` masks, and
  what it rebuilds from the rest.

Figures made here belong to no pyplot window manager: they draw with the
non-interactive Agg canvas whatever the display, never open a window, are
freed when dropped, and are saved with `figure.savefig(path)` (Jupyter
shows a returned Figure). To draw into a figure of your own, e.g. one that
`plt.show()` displays, pass `ax=`: the function then draws on that Axes and
returns its figure.
"""

import os

import numpy as np

from keras_ast.ops import kaldi

INSTALL_HINT = ("keras_ast.plot needs matplotlib: "
                "pip install keras-ast[plot] (or pip install matplotlib).")


def _figure(width, height, rows=1, height_ratios=None, sharex=False):
    """A new Figure on the Agg canvas, and its Axes (one per row)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=sharex, squeeze=False,
                           gridspec_kw={"height_ratios": height_ratios})
    return figure, list(axes[:, 0])


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error


def _numpy(x):
    """`keras.ops.convert_to_numpy` (Keras imported on use)."""
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x))


def _host(x):
    """A host NumPy array from an array, a list or a backend tensor."""
    if isinstance(x, (np.ndarray, list, tuple, float, int)):
        return np.asarray(x)
    return _numpy(x)


def _num_frames(num_samples):
    """Frames that hold audio: `1 + (samples - 400) // 160`, at least 1."""
    full = 1 + (int(num_samples) - kaldi.FRAME_LENGTH) // kaldi.FRAME_SHIFT
    return max(1, full)


def _frame_seconds(converter):
    return kaldi.FRAME_SHIFT / float(converter.sampling_rate)


def _waveform(waveform):
    waveform = _host(waveform)
    if waveform.ndim != 1:
        raise ValueError(
            f"Expected one mono waveform (samples,), got shape "
            f"{waveform.shape}."
        )
    return waveform


def waveform_features(waveform, converter, batch_size=8):
    """All the log-mel frames of a waveform, however long.

    The converter makes `max_length` frames a call; longer waveforms are
    cut into pieces that start on a frame boundary, so the frames are the
    ones a single long call would give. Only frames that hold audio are
    returned: `1 + (samples - 400) // 160`, at least 1.

    Args:
        waveform: a 1-D waveform, at the converter's sampling rate.
        converter: an `ASTAudioConverter`.
        batch_size: pieces per converter call (bounds the memory used).

    Returns:
        float32 `(frames, num_mel_bins)`.

    Examples:
        >>> converter = keras_ast.ASTAudioConverter(max_length=128)
        >>> waveform_features(np.zeros(48000, "float32"), converter).shape
        (298, 128)
    """
    waveform = _waveform(waveform)
    frames = _num_frames(len(waveform))
    step = converter.max_length * kaldi.FRAME_SHIFT
    pieces = [waveform[start:start + converter.num_samples]
              for start in range(0, frames * kaldi.FRAME_SHIFT, step)]
    # Whole pieces share calls; the last, maybe shorter, one goes alone.
    whole = pieces[:-1]
    groups = [whole[i:i + batch_size]
              for i in range(0, len(whole), batch_size)] + [pieces[-1:]]
    out = []
    for group in groups:
        batch = np.stack(group) if len(group) > 1 else group[0]
        features = _numpy(converter(batch))
        out.append(features.reshape(-1, features.shape[-1]))
    return np.concatenate(out)[:frames].astype(np.float32)


def _draw_spectrogram(ax, features, frame_seconds, cmap, label):
    """Draws `(frames, bins)` features; returns the image."""
    frames, bins = features.shape
    image = ax.imshow(
        features.T, origin="lower", aspect="auto", cmap=cmap,
        interpolation="nearest",
        extent=(0.0, frames * frame_seconds, 0.0, bins),
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    colorbar = ax.figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label(label)
    return image


def _features_of(x, converter):
    """`(features, frame_seconds, colorbar label)` of a waveform/features."""
    x = _host(x)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 1:
        if converter is None:
            from keras_ast.models.audio_converter import ASTAudioConverter

            converter = ASTAudioConverter()
        label = ("log-mel, normalised" if converter.do_normalize
                 else "log-mel energy")
        return (waveform_features(x, converter), _frame_seconds(converter),
                label)
    if x.ndim != 2:
        raise ValueError(
            "Expected a 1-D waveform (samples,) or features (frames, "
            f"num_mel_bins), got shape {x.shape}."
        )
    seconds = 0.01 if converter is None else _frame_seconds(converter)
    return x.astype(np.float32), seconds, "feature value"


def spectrogram(x, converter=None, ax=None, title=None):
    """Draws a log-mel spectrogram: time in seconds across, mel bin up.

    Args:
        x: a 1-D waveform (samples,), turned into features by `converter`,
            all of it however long, and drawn only where it holds audio
            (`1 + (samples - 400) // 160` frames, not the zero padding up
            to `max_length`); or features `(frames, num_mel_bins)`, drawn
            as they are.
        converter: the `ASTAudioConverter` for waveforms (default
            `ASTAudioConverter()`, AudioSet's); for features it only sets
            the frame length in seconds (10 ms by default).
        ax: a matplotlib Axes to draw on; by default a new Figure.
        title: the Axes title.

    Returns:
        The matplotlib Figure.

    Raises:
        ImportError: matplotlib is not installed (the `plot` extra).

    Examples:
        ```python
        classifier = keras_ast.ASTClassifier.from_preset(
            "ast_audioset_10_10_0.4593")
        waveform = keras_ast.load_audio("dog.wav")
        figure = spectrogram(waveform, converter=classifier.preprocessor)
        figure.savefig("spectrogram.png")
        ```
    """
    _require_matplotlib()
    features, frame_seconds, label = _features_of(x, converter)
    if ax is None:
        _, (ax,) = _figure(8, 3.5)
    _draw_spectrogram(ax, features, frame_seconds, "magma", label)
    if title is not None:
        ax.set_title(title)
    return ax.figure


def window_edges(starts, ends):
    """Where each window's heat-map cell begins and ends, seconds.

    Consecutive windows split their overlap (or the gap between them) in
    the middle: cells tile the recording from the first start to the last
    end, and are the windows themselves when windows do not overlap.

    Args:
        starts: `(windows,)` window start times, seconds, increasing
            (`Timeline.starts`).
        ends: `(windows,)` window end times, seconds (`Timeline.ends`).

    Returns:
        float64 `(windows + 1,)`: the edges of the cells.

    Examples:
        >>> window_edges(np.array([0., 5., 10.]), np.array([10., 15., 17.]))
        array([ 0. ,  7.5, 12.5, 17. ])
    """
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64)
    middle = (starts[1:] + ends[:-1]) / 2.0
    return np.concatenate([starts[:1], middle, ends[-1:]])


def timeline_rows(timeline, top_k=10):
    """Class indices a timeline plot shows, highest max score first.

    The `top_k` classes with the highest score in any window (all with
    `top_k=None`), and every class that has an event.

    Args:
        timeline: a `keras_ast.inference.timeline.Timeline`.
        top_k: how many classes to take by score (None: all).

    Returns:
        A list of class indices (columns of `timeline.scores`).

    Examples:
        >>> from keras_ast.inference.timeline import Event, Timeline
        >>> found = Timeline(
        ...     starts=np.array([0.0, 5.0]), ends=np.array([10.0, 12.0]),
        ...     scores=np.array([[0.9, 0.1, 0.3], [0.2, 0.05, 0.4]]),
        ...     labels=["Dog", "Bird", "Rain"],
        ...     events=[Event("Bird", 0.0, 10.0, 0.1)], duration=12.0)
        >>> timeline_rows(found, top_k=2)
        [0, 2, 1]
    """
    scores = np.asarray(timeline.scores, np.float32)
    best = scores.max(axis=0) if len(scores) else np.zeros(scores.shape[1])
    order = np.argsort(-best, kind="stable")
    chosen = set(order[:top_k].tolist() if top_k is not None else order)
    index = {str(label): i for i, label in enumerate(timeline.labels)}
    chosen.update(index[e.label] for e in timeline.events
                  if e.label in index)
    return [i for i in order.tolist() if i in chosen]


def _draw_timeline(ax, timeline, top_k):
    """Draws the heat map and event outlines; returns the QuadMesh."""
    from matplotlib.patches import Rectangle

    rows = timeline_rows(timeline, top_k)
    scores = np.asarray(timeline.scores, np.float32)
    names = [str(timeline.labels[i]) for i in rows]
    mesh = ax.pcolormesh(
        window_edges(timeline.starts, timeline.ends),
        np.arange(len(rows) + 1) - 0.5,
        scores[:, rows].T.reshape(len(rows), len(scores)),
        cmap="viridis", vmin=0.0, vmax=1.0, shading="flat",
    )
    position = {name: row for row, name in enumerate(names)}
    for event in timeline.events:
        if event.label not in position:
            continue
        ax.add_patch(Rectangle(
            (event.onset, position[event.label] - 0.42),
            event.offset - event.onset, 0.84,
            fill=False, edgecolor="#ff3b3b", linewidth=1.8,
        ))
    ax.set_yticks(np.arange(len(rows)), labels=names)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the highest score on top
    ax.set_xlim(0.0, max(float(timeline.duration),
                         float(np.max(timeline.ends, initial=0.0))))
    ax.set_xlabel("time (s)")
    colorbar = ax.figure.colorbar(mesh, ax=ax, pad=0.01)
    colorbar.set_label("window score")
    return mesh


def _timeline_height(timeline, top_k):
    return 0.28 * len(timeline_rows(timeline, top_k)) + 1.2


def timeline(timeline, top_k=10, ax=None):
    """Draws a `Timeline`: class-by-time heat map of scores, events outlined.

    Each row is a class, each column a window; a window's cell runs between
    the middles of its overlaps with its neighbours (see `window_edges`),
    colour is the window's score (0 to 1). The merged `timeline.events`
    are outlined in red on their rows, from onset to offset; an event runs
    from its first window's start to its last window's end, so with
    overlapping windows its outline reaches past its cells.

    Args:
        timeline: a `keras_ast.inference.timeline.Timeline` (from
            `ASTClassifier.tag`).
        top_k: how many classes to show, those with the highest score in
            any window (None: all), plus every class that has an event.
        ax: a matplotlib Axes to draw on; by default a new Figure.

    Returns:
        The matplotlib Figure.

    Raises:
        ImportError: matplotlib is not installed (the `plot` extra).

    Examples:
        ```python
        found = classifier.tag("street.wav")
        keras_ast.plot.timeline(found, top_k=5).savefig("timeline.png")
        ```
    """
    _require_matplotlib()
    if ax is None:
        _, (ax,) = _figure(8, _timeline_height(timeline, top_k))
    _draw_timeline(ax, timeline, top_k)
    if timeline.path:
        ax.set_title(os.path.basename(timeline.path))
    return ax.figure


def cls_attention(backbone, features):
    """The last layer's [CLS] attention to the patches, mean over heads.

    Computes the [CLS] query alone in the last layer (the same numbers
    `backbone.hidden_states(features)["attentions"][-1][:, :, 0]` holds,
    without the full attention maps of every layer).

    Args:
        backbone: an `ASTBackbone`.
        features: `(1, max_length, num_mel_bins)`.

    Returns:
        float32 `(F', T')`, the patch grid (`backbone.token_grid`):
        row `f`, column `t` is the attention to token `2 + f * T' + t`.

    Examples:
        >>> backbone = keras_ast.ASTBackbone(
        ...     hidden_dim=64, num_layers=2, num_heads=4,
        ...     intermediate_dim=128, max_length=128)
        >>> grid = cls_attention(backbone, np.zeros((1, 128, 128)))
        >>> grid.shape == backbone.token_grid
        True
    """
    from keras import ops

    x = backbone.embedding(ops.cast(features, "float32"), training=False)
    for layer in backbone.encoder_layers[:-1]:
        x = layer(x, training=False)
    _, scores = backbone.encoder_layers[-1](
        x, training=False, num_queries=1, return_attention_scores=True)
    mean = ops.mean(ops.cast(scores[0, :, 0, 2:], "float32"), axis=0)
    return _numpy(mean).astype(np.float32).reshape(backbone.token_grid)


def _patch_extent(backbone, frame_seconds):
    """Image extent that puts each grid cell on its patch's centre."""
    frequencies, times = backbone.token_grid
    half = backbone.patch_size / 2.0
    t_stride, f_stride = backbone.time_stride, backbone.frequency_stride
    left = half - t_stride / 2.0
    right = (times - 1) * t_stride + half + t_stride / 2.0
    bottom = half - f_stride / 2.0
    top = (frequencies - 1) * f_stride + half + f_stride / 2.0
    return (left * frame_seconds, right * frame_seconds, bottom, top)


def attention(classifier, waveform, ax=None):
    """Draws where the last layer's [CLS] token looks, over the spectrogram.

    The classifier scores the start of `waveform` (its converter's
    `num_samples`, what the model sees); the spectrogram of that audio is
    drawn in grey and the [CLS] token's attention to each patch (last
    layer, mean over heads, `cls_attention`) laid over it in colour, each
    patch's cell centred on its patch (frame `t * time_stride +
    patch_size / 2`, bin `f * frequency_stride + patch_size / 2`), more
    opaque where attention is higher. The title gives the share of patch
    attention that falls on the zero padding past the audio, if any.

    Args:
        classifier: an `ASTClassifier` with a preprocessor.
        waveform: a 1-D waveform at the classifier's sampling rate.
        ax: a matplotlib Axes to draw on; by default a new Figure.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: the classifier has no preprocessor.
        ImportError: matplotlib is not installed (the `plot` extra).

    Examples:
        ```python
        waveform = keras_ast.load_audio("dog.wav")
        attention(classifier, waveform).savefig("attention.png")
        ```
    """
    _require_matplotlib()
    converter = classifier.preprocessor
    if converter is None:
        raise ValueError(
            "attention() needs a classifier with a preprocessor (an "
            "ASTAudioConverter) to turn the waveform into features."
        )
    backbone = classifier.backbone
    waveform = _waveform(waveform)[:converter.num_samples]
    features = converter(waveform)
    grid = cls_attention(backbone, features)
    features = _numpy(features)
    frames = min(_num_frames(len(waveform)), converter.max_length)
    seconds = _frame_seconds(converter)
    if ax is None:
        _, (ax,) = _figure(8, 3.5)
    ax.imshow(
        features[0, :frames].T, origin="lower",
        aspect="auto", cmap="gray", interpolation="nearest",
        extent=(0.0, frames * seconds, 0.0, converter.num_mel_bins),
    )
    peak = float(grid.max()) or 1.0
    overlay = ax.imshow(
        grid, origin="lower", aspect="auto", cmap="inferno",
        interpolation="nearest", extent=_patch_extent(backbone, seconds),
        alpha=np.clip(0.15 + 0.7 * grid / peak, 0.0, 1.0), vmin=0.0,
    )
    ax.set_xlim(0.0, frames * seconds)
    ax.set_ylim(0.0, converter.num_mel_bins)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    colorbar = ax.figure.colorbar(overlay, ax=ax, pad=0.01)
    colorbar.set_label("[CLS] attention")
    padding = np.arange(grid.shape[1]) * backbone.time_stride >= frames
    title = (f"[CLS] attention, last layer, mean of {backbone.num_heads} "
             "heads")
    if padding.any() and grid.sum() > 0:
        share = grid[:, padding].sum() / grid.sum()
        title += f" ({share:.0%} on padding)"
    ax.set_title(title)
    return ax.figure


def file_report(classifier, waveform, timeline=None, path=None):
    """One picture of a recording: spectrogram on top, timeline below.

    The spectrogram covers the whole waveform (the classifier's converter,
    or AudioSet's without one); with a `timeline` (from
    `classifier.tag(waveform)`) its heat map and events are drawn below on
    the same time axis. `keras-ast ... --plot out.png` saves this.

    Args:
        classifier: an `ASTClassifier`.
        waveform: the recording, 1-D, at the classifier's sampling rate.
        timeline: optional `keras_ast.inference.timeline.Timeline` of it.
        path: the file it came from, named in the title (default: the
            timeline's `path`; without either the title says "recording").

    Returns:
        The matplotlib Figure.

    Raises:
        ImportError: matplotlib is not installed (the `plot` extra).

    Examples:
        ```python
        waveform = keras_ast.load_audio("street.wav")
        found = classifier.tag(waveform, sampling_rate=16000)
        file_report(classifier, waveform, found).savefig("report.png")
        ```
    """
    _require_matplotlib()
    converter = classifier.preprocessor
    if converter is None:
        from keras_ast.models.audio_converter import ASTAudioConverter

        converter = ASTAudioConverter(
            max_length=classifier.backbone.max_length,
            num_mel_bins=classifier.backbone.num_mel_bins)
    waveform = _waveform(waveform)
    features, seconds, label = _features_of(waveform, converter)
    duration = len(waveform) / float(converter.sampling_rate)
    if timeline is None:
        figure, (top,) = _figure(10, 3.5)
    else:
        height = _timeline_height(timeline, 10)
        figure, (top, bottom) = _figure(10, 3.2 + height, rows=2,
                                        height_ratios=[3.2, height],
                                        sharex=True)
        _draw_timeline(bottom, timeline, 10)
        duration = max(duration, float(timeline.duration))
    _draw_spectrogram(top, features, seconds, "magma", label)
    top.set_xlim(0.0, duration)
    if timeline is not None:
        top.set_xlabel("")
        top.tick_params(labelbottom=False)
    if path is None and timeline is not None:
        path = timeline.path
    name = os.path.basename(os.fsdecode(path)) if path else "recording"
    figure.suptitle(f"{name} ({duration:.2f} s)")
    return figure


def confusion_matrix(counts, labels, ax=None, title=None):
    """Draws a confusion matrix: true classes (rows) by predicted (columns).

    Each cell's colour is its share of the true class's clips (the row),
    so rare classes read as well as common ones; the count is written in
    the cell when there are at most 30 classes.

    Args:
        counts: `(num_classes, num_classes)` counts, row `i` column `j` the
            clips of class `i` predicted as `j`
            (`keras_ast.training.evaluate.confusion_matrix`).
        labels: the class names.
        ax: a matplotlib Axes to draw on; by default a new Figure.
        title: the Axes title (default: the accuracy and clip count).

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: `counts` is not `(len(labels), len(labels))`.
        ImportError: matplotlib is not installed (the `plot` extra).

    Examples:
        >>> figure = confusion_matrix([[8, 2], [1, 9]], ["no", "yes"])
        >>> figure.axes[0].get_title()
        '20 clips, accuracy 85.0%'

        From an evaluation report:

        ```python
        report = keras_ast.evaluate(classifier, "shards/test")
        matrix = report["confusion_matrix"]
        confusion_matrix(matrix["counts"], matrix["labels"]).savefig("cm.png")
        ```
    """
    _require_matplotlib()
    counts = np.asarray(counts, np.int64)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"Expected counts of shape ({n}, {n}) for {n} "
                         f"labels, got {counts.shape}.")
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape),
                      where=rows > 0)
    if ax is None:
        side = min(20.0, 2.5 + 0.4 * n)
        _, (ax,) = _figure(side + 1.0, side)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
    names = [str(label) for label in labels]
    ax.set_xticks(np.arange(n), labels=names, rotation=90)
    ax.set_yticks(np.arange(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                        fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    colorbar = ax.figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label("share of the true class")
    if title is None:
        total = int(counts.sum())
        accuracy = np.trace(counts) / total if total else float("nan")
        title = f"{total} clips, accuracy {accuracy:.1%}"
    ax.set_title(title)
    return ax.figure


def _clip_features(pretrainer, clip):
    """`(features (1, max_length, bins), frames that hold audio, label)`."""
    backbone = pretrainer.backbone
    clip = _host(clip)
    if clip.ndim == 1:
        converter = pretrainer.preprocessor
        if converter is None:
            from keras_ast.models.audio_converter import ASTAudioConverter

            converter = ASTAudioConverter(
                max_length=backbone.max_length,
                num_mel_bins=backbone.num_mel_bins)
        waveform = _waveform(clip)[:converter.num_samples]
        if not len(waveform):
            raise ValueError("reconstruction() got an empty waveform.")
        features = _numpy(converter(waveform)).astype(np.float32)
        frames = min(_num_frames(len(waveform)), backbone.max_length)
        label = ("log-mel, normalised" if converter.do_normalize
                 else "log-mel energy")
        return features.reshape((1,) + features.shape[-2:]), frames, label
    if clip.ndim == 3 and clip.shape[0] == 1:
        clip = clip[0]
    expected = (backbone.max_length, backbone.num_mel_bins)
    if clip.ndim != 2 or clip.shape != expected:
        raise ValueError(
            "reconstruction() takes a 1-D waveform (samples,) or the "
            f"model's features {expected} (max_length, num_mel_bins); got "
            f"shape {clip.shape}.")
    return clip.astype(np.float32)[None], backbone.max_length, \
        "feature value"


def _patch_mask(pretrainer, mask):
    """The mask as bool `(1, F' * T')`, or None."""
    if mask is None:
        return None
    grid = tuple(pretrainer.backbone.token_grid)
    patches = grid[0] * grid[1]
    mask = np.asarray(mask)
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must hold booleans (True: masked) or 0/1.")
    if mask.shape == grid or mask.shape in ((patches,), (1, patches)):
        return mask.astype(bool).reshape(1, patches)
    raise ValueError(
        f"mask must have the patch grid's shape {grid} (F', T'), or "
        f"({patches},) in token order f * T' + t; got {mask.shape}.")


def _masked_pixels(pretrainer, mask):
    """Bool `(max_length, num_mel_bins)`: the values that any masked
    patch covers (those `ASTPretrainer.reconstruct` replaces)."""
    backbone = pretrainer.backbone
    mask = np.asarray(mask, bool).reshape(-1)
    shape = (backbone.max_length, backbone.num_mel_bins)
    hidden = np.zeros(shape[0] * shape[1], bool)
    hidden[pretrainer.patch_indices[mask].ravel()] = True
    return hidden.reshape(shape)


def _panels(stacked, seconds):
    """A Figure with three Axes sharing both axes, stacked or in a row."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    if stacked:
        size, shape = (10, 7.5), (3, 1)
    else:
        size, shape = (max(11.0, 3 * seconds + 2.0), 3.8), (1, 3)
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(*shape, sharex=True, sharey=True, squeeze=False)
    return figure, list(axes.ravel())


def reconstruction(pretrainer, clip, mask=None, stacked=None, title=None):
    """Draws a clip, the patches a pretrainer masks, and its reconstruction.

    Three panels on one time and mel-bin scale (`ASTPretrainer.reconstruct`
    on the clip, dropout off): the input spectrogram (the model's
    normalised features); the same in grey with the masked patches shaded
    (a value is shaded when any masked patch covers it); and the
    reconstruction: the visible values from the input, the masked patches
    predicted by the decoder and brought back to each patch's own mean and
    standard deviation (as Audio-MAE draws them), overlapping predictions
    averaged. The input and the reconstruction share one colour scale. The
    third panel's title gives the clip's reconstruction loss (mean squared
    error over the masked patches, each normalised by its own mean and
    variance) beside the loss of predicting each patch's mean (about 1.0,
    the baseline a useful model beats).

    Args:
        pretrainer: an `ASTPretrainer`.
        clip: a 1-D waveform at the preprocessor's sampling rate (16 kHz;
            the first `max_length` frames are used, and only the frames
            that hold audio are drawn), turned into features by
            `pretrainer.preprocessor` (or AudioSet's converter at the
            backbone's size without one); or the model's features
            `(max_length, num_mel_bins)` (or `(1, max_length,
            num_mel_bins)`), all of them drawn.
        mask: None (a random mask from the pretrainer's masking, as in
            training), or booleans `(F', T')` on the patch grid
            (`backbone.token_grid`) or `(F' * T',)` in token order
            `f * T' + t`, masking exactly `pretrainer.num_masked` patches.
        stacked: draw the panels one above the other (True) or side by
            side (False); None: stacked for clips over 3 s (300 frames).
        title: the figure's title (default: none).

    Returns:
        The matplotlib Figure; its three panels are `figure.axes[:3]`
        (one colorbar follows them).

    Raises:
        TypeError: `pretrainer` is not an `ASTPretrainer`.
        ValueError: `clip` is neither a 1-D waveform nor features of the
            model's size, or `mask` has the wrong shape, is not boolean,
            or does not mask `pretrainer.num_masked` patches.
        ImportError: matplotlib is not installed (the `plot` extra).

    Examples:
        ```python
        backbone = keras_ast.ASTBackbone.from_preset("runs/pretrain/preset")
        pretrainer = keras_ast.ASTPretrainer(
            backbone, keras_ast.ASTAudioConverter(max_length=100))
        waveform = keras_ast.load_audio("speech.wav")
        reconstruction(pretrainer, waveform).savefig("reconstruction.png")
        ```
    """
    from keras_ast.models.pretrainer import ASTPretrainer

    _require_matplotlib()
    if not isinstance(pretrainer, ASTPretrainer):
        raise TypeError(
            "reconstruction() needs an ASTPretrainer, got "
            f"{type(pretrainer).__name__}.")
    features, frames, label = _clip_features(pretrainer, clip)
    out = pretrainer.reconstruct({"features": features},
                                 mask=_patch_mask(pretrainer, mask))
    shown = slice(0, frames)
    inputs = out["features"][0, shown].T
    hidden = _masked_pixels(pretrainer, out["mask"][0])[shown].T
    rebuilt = out["reconstruction"][0, shown].T
    converter = pretrainer.preprocessor
    seconds = (0.01 if converter is None else _frame_seconds(converter))
    if stacked is None:
        stacked = frames > 300
    figure, axes = _panels(stacked, frames / 100.0)
    extent = (0.0, frames * seconds, 0.0, inputs.shape[0])
    low, high = float(inputs.min()), float(inputs.max())
    common = dict(origin="lower", aspect="auto", interpolation="nearest",
                  extent=extent)
    image = axes[0].imshow(inputs, cmap="magma", vmin=low, vmax=high,
                           **common)
    axes[1].imshow(inputs, cmap="gray", vmin=low, vmax=high, **common)
    axes[1].imshow(hidden, cmap="Blues", vmin=0.0, vmax=1.0,
                   alpha=np.where(hidden, 0.75, 0.0).astype(np.float32),
                   **common)
    axes[2].imshow(rebuilt, cmap="magma", vmin=low, vmax=high, **common)
    masked = int(out["mask"][0].sum())
    baseline = float(np.mean(np.square(out["targets"])))
    axes[0].set_title("input" if stacked else "input\n")
    total = out["mask"].shape[1]
    gap = " " if stacked else "\n"
    axes[1].set_title(f"masked:{gap}{masked} of {total} patches "
                      f"({masked / total:.0%})")
    axes[2].set_title(f"reconstruction:{gap}loss {float(out['loss']):.3f} "
                      f"(patch means: {baseline:.3f})")
    for ax in axes:
        ax.set_xlabel("time (s)")
        ax.label_outer()
    axes[0].set_ylabel("mel bin")
    if stacked:
        for ax in axes:
            ax.set_ylabel("mel bin")
    colorbar = figure.colorbar(image, ax=axes, pad=0.01)
    colorbar.set_label(label)
    if title is not None:
        figure.suptitle(title)
    return figure
