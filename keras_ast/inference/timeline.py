"""Long recordings as timelines: windows, per-window scores, merged events.

`ASTClassifier.tag` cuts a recording into windows of the model's input
length, scores them, and describes the result with a `Timeline`. This
module holds the parts that need no model (NumPy only): where the windows
go, how window scores become events, and the JSON / CSV forms.

The rules:
- windows start at 0, `hop`, `2 * hop`, ... until one reaches the end of
  the recording; the last one may be shorter (it is scored as that shorter
  clip alone), and a recording shorter than a window is one window. No
  window starts at or past the end: with a hop longer than the window,
  the windows leave gaps, the last starts before the end and may stop
  short of it;
- a window votes for a class when the class is among the window's `top_k`
  scores and its score is at least `threshold` (after the optional median
  filter over windows); consecutive voting windows of a class that touch
  or overlap merge into one event from the first window's start to the
  last window's end, with the highest window score as the event's score.
  Onsets and offsets therefore fall on window boundaries, and an event
  never spans audio that no window heard.
"""

import csv
import dataclasses
import io
from typing import List
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class Event:
    """A sound class present from `onset` to `offset` (seconds).

    `ASTClassifier.tag` makes events by merging the windows that vote for a
    class (see `keras_ast.inference.timeline`); they are frozen.

    Args:
        label: the class name.
        onset: the start, in seconds from the start of the recording.
        offset: the end, in seconds.
        score: the highest window score of the class within the event.

    Examples:
        >>> event = Event("Dog", onset=1.0, offset=3.5, score=0.8)
        >>> event.offset - event.onset
        2.5
    """

    label: str
    onset: float
    offset: float
    score: float


@dataclasses.dataclass
class Timeline:
    """What `ASTClassifier.tag` found in one recording.

    `tag` makes timelines; `to_dict` and `events_csv` write them as JSON
    and CSV, `keras_ast.plot.timeline` draws them.

    Args:
        starts: `(windows,)` window start times, seconds.
        ends: `(windows,)` window end times, seconds (the last window ends
            with the recording unless the hop is longer than the window).
        scores: `(windows, classes)` float32 sigmoid or softmax scores.
        labels: the class names, one per column of `scores`.
        events: merged `Event`s, by onset then label.
        duration: the recording's length, seconds.
        path: the file it came from, if any.

    Examples:
        >>> timeline = Timeline(
        ...     starts=np.array([0.0, 5.0]), ends=np.array([10.0, 12.0]),
        ...     scores=np.array([[0.9, 0.1], [0.2, 0.7]], "float32"),
        ...     labels=["Dog", "Rain"],
        ...     events=[Event("Dog", 0.0, 10.0, 0.9),
        ...             Event("Rain", 5.0, 12.0, 0.7)],
        ...     duration=12.0, path="street.wav")
        >>> events = timeline.to_dict()["events"]
        >>> events[1]
        {'label': 'Rain', 'onset': 5.0, 'offset': 12.0, 'score': 0.7}
    """

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    labels: List[str]
    events: List[Event]
    duration: float
    path: Optional[str] = None

    def to_dict(self):
        """A JSON-ready dict: path, duration, events (no score matrix).

        Returns:
            `{"path", "duration", "events"}`, the events as dicts with
            `label`, `onset`, `offset` (seconds, rounded to milliseconds)
            and `score` (rounded to 4 decimals).
        """
        return {
            "path": self.path,
            "duration": round(float(self.duration), 3),
            "events": [
                {"label": e.label, "onset": round(e.onset, 3),
                 "offset": round(e.offset, 3), "score": round(e.score, 4)}
                for e in self.events
            ],
        }


def window_starts(num_samples, window, hop):
    """Start samples of the windows over a recording of `num_samples`.

    Every start is below `num_samples`: the windows stop at the first that
    reaches the end, or, with `hop > window` (gaps between windows), at the
    last that starts before it.

    Examples:
    >>> window_starts(100, 40, 20).tolist()
    [0, 20, 40, 60]
    >>> window_starts(100, 10, 30).tolist()
    [0, 30, 60, 90]
    """
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got "
                         f"{window} and {hop}.")
    if num_samples <= window:
        return np.zeros(1, np.int64)
    # The first window that reaches the end is the last one, and no window
    # starts at or past the end (which only a hop > window could reach).
    count = min(-(-(num_samples - window) // hop) + 1,
                -(-num_samples // hop))
    return np.arange(count, dtype=np.int64) * hop


def median_filter(scores, size):
    """Median of each class's scores over `size` windows (odd), edges held."""
    size = int(size)
    if size <= 1:
        return scores
    if size % 2 == 0:
        raise ValueError(f"median_filter must be odd, got {size}.")
    half = size // 2
    padded = np.pad(scores, ((half, half), (0, 0)), mode="edge")
    stacked = np.stack([padded[i:i + len(scores)] for i in range(size)])
    return np.median(stacked, axis=0).astype(scores.dtype)


def merge_events(starts, ends, scores, labels, top_k=None, threshold=0.0):
    """Events from window scores (see the module doc for the rule).

    Args:
        starts, ends: `(windows,)` seconds, in order; a window that starts
            after the previous one ends (a gap) breaks every event.
        scores: `(windows, classes)`.
        labels: class names.
        top_k: classes per window that may vote (None: all).
        threshold: the lowest score that votes.

    Returns:
        A list of `Event`, sorted by onset, then label.

    Examples:
    >>> events = merge_events(
    ...     np.array([0., 1., 2.]), np.array([2., 3., 4.]),
    ...     np.array([[.75, .25], [.5, .25], [.25, .75]]), ["a", "b"],
    ...     threshold=0.5)
    >>> [(e.label, e.onset, e.offset, e.score) for e in events]
    [('a', 0.0, 3.0, 0.75), ('b', 2.0, 4.0, 0.75)]
    """
    scores = np.asarray(scores, np.float32)
    votes = scores >= threshold
    if top_k is not None and top_k < scores.shape[1]:
        ranks = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        in_top = np.zeros_like(votes)
        np.put_along_axis(in_top, ranks, True, axis=1)
        votes &= in_top
    # A run of votes breaks where a window starts after the previous one
    # ends: nothing heard the gap between them.
    joined = np.asarray(ends[:-1]) >= np.asarray(starts[1:])
    events = []
    for column in np.flatnonzero(votes.any(axis=0)):
        voted = votes[:, column]
        begins = voted & np.concatenate([[True], ~(voted[:-1] & joined)])
        finishes = voted & np.concatenate([~(voted[1:] & joined), [True]])
        for first, last in zip(np.flatnonzero(begins),
                               np.flatnonzero(finishes)):
            events.append(Event(
                label=str(labels[column]),
                onset=float(starts[first]),
                offset=float(ends[last]),
                score=float(scores[first:last + 1, column].max()),
            ))
    return sorted(events, key=lambda e: (e.onset, e.label))


def events_csv(timelines):
    """CSV text: `path,label,onset,offset,score`, one row per event.

    Args:
        timelines: an iterable of `Timeline`s, e.g. what `tag` returns for
            a list of files. A timeline without a path gets an empty
            `path` column.

    Returns:
        The CSV text, a header row first, lines ending in `\\n`; times in
        seconds with 3 decimals, scores with 4.

    Examples:
        >>> timeline = Timeline(
        ...     starts=np.array([0.0]), ends=np.array([10.0]),
        ...     scores=np.array([[0.9]], "float32"), labels=["Dog"],
        ...     events=[Event("Dog", 0.0, 10.0, 0.9)], duration=10.0,
        ...     path="dog.wav")
        >>> print(events_csv([timeline]), end="")
        path,label,onset,offset,score
        dog.wav,Dog,0.000,10.000,0.9000
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "onset", "offset", "score"])
    for timeline in timelines:
        for e in timeline.events:
            writer.writerow([timeline.path or "", e.label, f"{e.onset:.3f}",
                             f"{e.offset:.3f}", f"{e.score:.4f}"])
    return out.getvalue()
