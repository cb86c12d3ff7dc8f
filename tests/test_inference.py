"""Inference: safe inputs, `classify`, `tag`, `keras-ast classify`."""

import csv
import io
import json
import threading
import time
import warnings

import keras
import numpy as np
import pytest
import soundfile
from conftest import noise

import keras_ast
from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.inference.classify import batch_plan
from keras_ast.inference.timeline import events_csv
from keras_ast.inference.timeline import median_filter
from keras_ast.inference.timeline import merge_events
from keras_ast.inference.timeline import window_starts
from keras_ast.inference.waveforms import to_float

RATE = 16000
LABELS = ["speech", "music", "noise"]


def tiny(multi_label=True, max_length=100):
    keras.utils.set_random_seed(1)
    backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=max_length)
    return ASTClassifier(backbone, num_classes=3, labels=LABELS,
                         multi_label=multi_label,
                         preprocessor=ASTAudioConverter(
                             max_length=max_length))


@pytest.fixture(scope="module")
def classifier():
    return tiny()


@pytest.fixture(scope="module")
def preset(tmp_path_factory, classifier):
    path = str(tmp_path_factory.mktemp("inference") / "preset")
    classifier.save_to_preset(path)
    return path


def recording(seconds, seed=0):
    """Noise whose loudness and colour change every second."""
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal(RATE) * rng.uniform(0.01, 0.2)
             for _ in range(int(np.ceil(seconds)))]
    return np.concatenate(parts)[:int(seconds * RATE)].astype(np.float32)


# --- inputs that cannot silently go wrong --------------------------------


def test_samples_channels_layout_is_refused(classifier):
    stereo = np.zeros((441000, 2), np.float32)
    with pytest.raises(ValueError, match=r"looks like \(samples, channels\)"
                       r".*mean\(axis=-1\)"):
        classifier.predict(stereo, verbose=0)
    with pytest.raises(ValueError, match="samples, channels"):
        classifier.classify(stereo, sampling_rate=RATE)


def test_integer_pcm_is_scaled_by_full_scale(classifier):
    clip = noise(0.8, seed=3) * 0.5
    expected = classifier.predict(clip[None], verbose=0)
    int16 = np.round(clip * 32768).astype(np.int16)
    np.testing.assert_allclose(classifier.predict(int16[None], verbose=0),
                               expected, atol=1e-3)
    int32 = np.round(clip.astype(np.float64) * 2**31).astype(np.int32)
    np.testing.assert_allclose(classifier.predict(int32, verbose=0),
                               expected, atol=1e-4)
    uint8 = np.round(clip * 128 + 128).clip(0, 255).astype(np.uint8)
    np.testing.assert_allclose(
        to_float(uint8), (uint8 - 128.0) / 128.0)
    # Integer clips in a list are scaled too.
    np.testing.assert_allclose(classifier.predict([int16], verbose=0),
                               expected, atol=1e-3)


def test_float_audio_far_above_full_scale_warns():
    with pytest.warns(UserWarning, match="far above full scale"):
        to_float(np.array([0.0, 3000.0], np.float32))
    with pytest.warns(UserWarning, match="peaks at 2500.0"):  # negative
        to_float(np.array([-2500.0, 0.5], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        to_float(np.array([0.0, 1.2], np.float32))
        to_float(np.array([-1.1, 0.9], np.float32))


@pytest.mark.parametrize("empty", [np.zeros(0, np.float32), [],
                                   np.zeros((3, 0), np.float32),
                                   [np.zeros(0, np.float32)]])
def test_empty_input_is_an_error(classifier, empty):
    with pytest.raises(ValueError, match="empty"):
        classifier.predict(empty, verbose=0)


def test_too_long_clip_warns_once_and_points_to_tag():
    classifier = tiny()
    long_clip = recording(3.0)
    with pytest.warns(UserWarning, match=r"only its first 1\.01 s.*tag") as (
            caught):
        classifier.predict(long_clip, verbose=0)
    # It names the user's line (here), not one inside keras_ast.
    assert {w.filename for w in caught if "first 1.01" in str(w.message)
            } == {__file__}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        classifier.predict(long_clip, verbose=0)  # once per classifier
        classifier.predict(long_clip[:RATE], verbose=0)


def test_rate_error_names_the_resampler(classifier):
    with pytest.raises(ValueError, match=r"44100 Hz.*16000 Hz.*"
                       r"keras_ast\.resample.*keras_ast\.load_audio"):
        classifier.classify(noise(0.5), sampling_rate=44100)


def test_arrays_without_a_rate_warn_once_per_line(classifier, tmp_path):
    path = write_stereo_wav(str(tmp_path / "a.wav"), seconds=0.5)
    clip = noise(0.5)
    message = r"without sampling_rate=.*model's 16000 Hz.*sampling_rate="
    for call in (lambda: classifier.classify(clip),
                 lambda: classifier.classify(np.stack([clip, clip])),
                 lambda: classifier.classify([path, clip]),
                 lambda: classifier.tag(clip, window_seconds=0.25)):
        with pytest.warns(UserWarning, match=message) as caught:
            call()
        assert {w.filename for w in caught
                if "sampling_rate=" in str(w.message)} == {__file__}
    # Files carry their rate; a stated rate is checked: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        classifier.classify(clip, sampling_rate=RATE)
        classifier.classify([path, clip], sampling_rate=RATE)
        classifier.classify(path)
        classifier.classify([path, path])
        classifier.tag(path, window_seconds=0.25)
        classifier.tag(clip, window_seconds=0.25, sampling_rate=RATE)
    # The warning names the caller's line, so Python's default filter
    # shows it once there, not once a call.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default", UserWarning)
        for _ in range(3):
            classifier.classify(clip)
    rate_warnings = [w for w in caught if "sampling_rate=" in str(w.message)]
    assert len(rate_warnings) == 1
    assert rate_warnings[0].filename == __file__


def test_top_k_below_one_is_refused(classifier, preset, tmp_path, capsys):
    clip = noise(0.5)
    for top_k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_k must be .* at least 1"):
            classifier.classify(clip, top_k=top_k, sampling_rate=RATE)
        with pytest.raises(ValueError, match="top_k must be .* at least 1"):
            classifier.tag(clip, top_k=top_k, sampling_rate=RATE)
    assert len(classifier.classify(clip, top_k=np.int64(1),
                                   sampling_rate=RATE)) == 1
    path = write_stereo_wav(str(tmp_path / "a.wav"), seconds=0.5)
    for argv in (["classify", path, "--preset", preset, "--top-k", "0"],
                 ["classify", path, "--preset", preset, "--batch-size", "0"],
                 ["export", str(tmp_path / "out"), "--preset", preset,
                  "--top-k", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert "must be at least 1, got 0" in capsys.readouterr().err


def test_predict_scores_draws_a_bar_only_for_several_batches(classifier,
                                                             capsys):
    # Keras draws a bar twice in a call (as it steps, then when it ends):
    # on a log or a notebook a one-batch call showed two.
    classifier.predict_scores(np.zeros((2, RATE), np.float32))
    classifier.predict_scores([noise(0.5), noise(0.3)])
    assert capsys.readouterr().out == ""
    scores = classifier.predict_scores(np.zeros((5, RATE), np.float32),
                                       batch_size=2)
    assert scores.shape == (5, 3) and "3/3" in capsys.readouterr().out
    classifier.predict_scores(np.zeros((2, RATE), np.float32), verbose=1)
    assert "1/1" in capsys.readouterr().out


# --- one way: every input checked once, in inference/waveforms ------------


def _call(entry, classifier, x, **kwargs):
    if entry == "predict":
        return classifier.predict(x, verbose=0, **kwargs)
    if entry == "predict_scores":
        return classifier.predict_scores(x, verbose=0, **kwargs)
    if entry == "classify":
        return classifier.classify(x, **kwargs)
    return classifier.tag(x, window_seconds=0.25, **kwargs)


def _with_nan():
    clip = noise(0.5)
    clip[7] = np.nan
    return clip


BAD_INPUTS = {
    "rate": (lambda: noise(0.5), 44100,
             r"^Audio sampled at 44100 Hz was given to a model that expects "
             r"16000 Hz\. Resample it first"),
    "empty list": (lambda: [], RATE, r"^Expected audio, got an empty list"),
    "bool": (lambda: np.zeros(800, bool), RATE,
             r"^Audio samples must be numbers, got dtype bool\.$"),
    "uint16": (lambda: np.zeros(800, np.uint16), RATE,
               r"^Unsigned uint16 audio has no standard scale"),
    "nan": (_with_nan, RATE, r"^Waveforms contain NaN or infinite samples "
            r"\(first at index \[7\]"),
    "stereo": (lambda: np.zeros((20000, 2), np.float32), RATE,
               r"^An array of shape \(20000, 2\) looks like \(samples, "
               r"channels\)"),
    "3-d": (lambda: np.zeros((2, 800, 2), np.float32), RATE,
            r"^Expected mono waveforms of shape \(batch, samples\)"),
}


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
@pytest.mark.parametrize("entry", ["predict", "predict_scores", "classify",
                                   "tag"])
def test_every_entry_refuses_bad_audio_with_one_message(classifier, entry,
                                                        bad):
    make, rate, message = BAD_INPUTS[bad]
    with pytest.raises(ValueError, match=message):
        _call(entry, classifier, make(), sampling_rate=rate)


@pytest.mark.parametrize("entry", ["predict", "predict_scores", "classify",
                                   "tag"])
def test_host_audio_is_checked_once_per_call(classifier, entry, monkeypatch):
    from keras_ast.inference import waveforms

    checked, to_float = [], waveforms.to_float

    def counted(audio):
        checked.append(np.shape(audio))
        return to_float(audio)

    monkeypatch.setattr(waveforms, "to_float", counted)
    _call(entry, classifier, [noise(0.5, seed=1), noise(0.3, seed=2)],
          sampling_rate=RATE)
    assert checked == [(8000,), (4800,)]  # each clip of the list once
    checked.clear()
    _call(entry, classifier, np.zeros((2, 8000), np.int16),
          sampling_rate=RATE)
    assert checked == [(2, 8000)]  # the batch once


def test_classify_cuts_a_long_clip_with_one_warning():
    classifier = tiny()
    long_clip = recording(3.0)
    with pytest.warns(UserWarning, match=r"only its first 1\.01 s.*tag") as (
            caught):
        cut = classifier.classify(long_clip, top_k=None, sampling_rate=RATE)
    assert {w.filename for w in caught if "first 1.01" in str(w.message)
            } == {__file__}
    start = long_clip[:classifier.preprocessor.num_samples]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # once per classifier
        expected = classifier.classify(start, top_k=None, sampling_rate=RATE)
        classifier.classify(long_clip, sampling_rate=RATE)
        classifier.predict(long_clip, verbose=0)
    assert [label for label, _ in cut] == [label for label, _ in expected]
    np.testing.assert_allclose([s for _, s in cut], [s for _, s in expected],
                               atol=1e-5)


# --- classify ------------------------------------------------------------


def write_stereo_wav(path, seconds=1.5, rate=44100, seed=0):
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    stereo = rng.standard_normal((frames, 2)) * [0.2, 0.05]
    soundfile.write(path, stereo.astype(np.float32), rate, subtype="PCM_16")
    return path


def test_classify_a_file_as_predict_scores_of_the_decoded_clip(
        classifier, tmp_path):
    path = write_stereo_wav(str(tmp_path / "stereo.wav"))
    clip = keras_ast.load_audio(path)
    assert clip.ndim == 1 and clip.shape[0] == int(1.5 * RATE)
    expected = classifier.predict_scores([clip], verbose=0)[0]
    result = classifier.classify(path, top_k=3)
    assert [label for label, _ in result] == [
        LABELS[i] for i in np.argsort(-expected)]
    np.testing.assert_allclose([score for _, score in result],
                               np.sort(expected)[::-1], atol=1e-5)
    # A list of paths and arrays of any lengths: one result each.
    results = classifier.classify([path, clip[:5000], clip], top_k=2,
                                  sampling_rate=RATE)
    assert len(results) == 3 and all(len(r) == 2 for r in results)
    np.testing.assert_allclose(results[0][0][1], result[0][1], atol=1e-5)
    # threshold keeps the labels above it, best first.
    kept = classifier.classify(clip, top_k=None,
                               threshold=float(np.median(expected)),
                               sampling_rate=RATE)
    assert [s for _, s in kept] == sorted([s for _, s in kept],
                                          reverse=True)
    assert len(kept) == 2


def test_classify_uses_softmax_for_single_label(tmp_path):
    single = tiny(multi_label=False)
    result = single.classify(noise(1.0), top_k=None, sampling_rate=RATE)
    assert sum(score for _, score in result) == pytest.approx(1.0, abs=1e-5)
    multi = tiny(multi_label=True)
    result = multi.classify(noise(1.0), top_k=None, sampling_rate=RATE)
    assert sum(score for _, score in result) != pytest.approx(1.0, abs=1e-2)


# --- tag and timelines ---------------------------------------------------


def test_window_starts_cover_the_recording():
    assert window_starts(100, 40, 20).tolist() == [0, 20, 40, 60]
    assert window_starts(30, 40, 20).tolist() == [0]
    assert window_starts(41, 40, 40).tolist() == [0, 40]


def test_window_starts_never_reach_the_end():
    # The report: 0.5 s windows every 5 s over 180 s scored an empty
    # window at 180 s.
    assert window_starts(180 * RATE, RATE // 2, 5 * RATE)[-1] == 175 * RATE
    assert window_starts(90, 10, 30).tolist() == [0, 30, 60]
    assert window_starts(91, 10, 30).tolist() == [0, 30, 60, 90]
    for num_samples in range(1, 130):
        for window in (1, 7, 40):
            for hop in (1, 5, 13, 40, 60):
                starts = window_starts(num_samples, window, hop)
                assert starts[0] == 0 and np.all(np.diff(starts) == hop)
                assert starts[-1] < num_samples
                if hop <= window:  # the last window is the first to reach
                    assert starts[-1] + window >= num_samples  # the end
                    assert len(starts) == 1 or (
                        starts[-2] + window < num_samples)
                else:  # gaps: every window that starts before the end
                    assert starts[-1] + hop >= num_samples


def test_merge_events_never_span_a_gap():
    labels = ["a", "b"]
    scores = np.array([[.9, .1], [.8, .1], [.7, .1]], np.float32)
    gaps = merge_events(np.array([0., 5., 10.]), np.array([.5, 5.5, 10.5]),
                        scores, labels, threshold=0.5)
    assert [(e.onset, e.offset) for e in gaps] == [
        (0.0, 0.5), (5.0, 5.5), (10.0, 10.5)]
    assert [e.score for e in gaps] == pytest.approx([.9, .8, .7])
    # Windows that touch (or overlap) still merge.
    touching = merge_events(np.array([0., 1., 2.5]), np.array([1., 2., 3.]),
                            scores, labels, threshold=0.5)
    assert [(e.onset, e.offset) for e in touching] == [(0.0, 2.0),
                                                       (2.5, 3.0)]


def test_merge_events_rule():
    starts = np.arange(6) * 1.0
    ends = starts + 2.0
    scores = np.array([[.9, .1, .0], [.8, .6, .0], [.2, .7, .0],
                       [.1, .1, .0], [.9, .8, .7], [.9, .1, .0]], np.float32)
    events = merge_events(starts, ends, scores, ["a", "b", "c"],
                          threshold=0.5)
    assert [(e.label, e.onset, e.offset) for e in events] == [
        ("a", 0.0, 3.0), ("b", 1.0, 4.0), ("a", 4.0, 7.0), ("b", 4.0, 6.0),
        ("c", 4.0, 6.0)]
    assert events[0].score == pytest.approx(0.9)
    top1 = merge_events(starts, ends, scores, ["a", "b", "c"], top_k=1,
                        threshold=0.5)
    assert [(e.label, e.onset) for e in top1] == [("a", 0.0), ("b", 2.0),
                                                  ("a", 4.0)]
    smooth = median_filter(np.array([[0.], [1.], [0.], [0.], [1.], [1.]]), 3)
    assert smooth[:, 0].tolist() == [0, 0, 0, 0, 1, 1]


def test_tag_scores_windows_as_predict_scores_of_the_slices(classifier):
    audio = recording(60.0)
    timeline = classifier.tag(audio, threshold=0.5, batch_size=16,
                              sampling_rate=RATE)
    window = classifier.preprocessor.num_samples
    starts = np.round(timeline.starts * RATE).astype(int)
    stops = np.round(timeline.ends * RATE).astype(int)
    assert starts[1] == window // 2 and stops[0] == window
    assert stops[-1] == audio.shape[0] and len(starts) == int(
        np.ceil((audio.shape[0] - window) / (window // 2))) + 1
    slices = [audio[a:b] for a, b in zip(starts, stops)]
    np.testing.assert_allclose(
        timeline.scores, classifier.predict_scores(slices, verbose=0),
        atol=1e-4)
    assert timeline.events, "noise of changing loudness gives events"
    onsets = set(timeline.starts.tolist())
    offsets = set(timeline.ends.tolist())
    for event in timeline.events:
        assert event.onset in onsets and event.offset in offsets
    data = json.loads(json.dumps(timeline.to_dict()))
    assert data["duration"] == 60.0 and len(data["events"]) == len(
        timeline.events)
    rows = list(csv.DictReader(io.StringIO(events_csv([timeline]))))
    assert len(rows) == len(timeline.events)
    assert float(rows[0]["onset"]) == pytest.approx(timeline.events[0].onset,
                                                    abs=1e-3)


@pytest.mark.parametrize("count,batch_size", [(18, 8), (19, 8), (11, 32),
                                              (33, 32), (1, 4), (0, 4)])
def test_batch_plan_covers_every_slice_once(count, batch_size):
    for fixed in (False, True):
        plan = batch_plan(count, batch_size, fixed_shapes=fixed)
        firsts = [first for first, _, _ in plan]
        rows = [row for _, row, _ in plan]
        assert firsts == [sum(rows[:i]) for i in range(len(rows))]
        assert sum(rows) == count
        assert len(plan) == -(-count // batch_size)
        assert all(row <= shape <= batch_size for _, row, shape in plan)
        if fixed:  # full batches, then one power of two: few compiles
            assert all(shape == batch_size for _, _, shape in plan[:-1])
            assert all(shape & (shape - 1) == 0 or shape == batch_size
                       for _, _, shape in plan)
            assert all(shape < 2 * row for _, row, shape in plan)
        else:  # no padding, batches even to one row
            assert all(row == shape for _, row, shape in plan)
            assert max(rows, default=0) - min(rows, default=0) <= 1
    assert batch_plan(18, 8, False) == [(0, 6, 6), (6, 6, 6), (12, 6, 6)]
    assert batch_plan(19, 8, True)[-1] == (16, 3, 4)
    with pytest.raises(ValueError, match="batch_size"):
        batch_plan(3, 0, False)


def test_tag_pads_only_where_shapes_compile(classifier, monkeypatch):
    shapes = []
    call = classifier.predict_on_batch

    def recorded(inputs):
        shapes.append(inputs["waveforms"].shape[0])
        return call(inputs)

    monkeypatch.setattr(classifier, "predict_on_batch", recorded)
    timeline = classifier.tag(recording(10.0), window_seconds=1.0,
                              hop_seconds=0.5, batch_size=8,
                              sampling_rate=RATE)
    windows = len(timeline.starts)  # 19: 8 + 8 + 3 or 7 + 6 + 6
    assert windows == 19
    if keras.config.backend() == "torch":
        assert shapes == [7, 6, 6]
    else:
        assert shapes == [8, 8, 4]


def test_tag_with_a_hop_longer_than_the_window(classifier):
    # 0.5 s windows every 4 s over 12 s: three windows, none at 12 s, and
    # no event over the 3.5 s no window heard.
    audio = recording(12.0, seed=3)
    timeline = classifier.tag(audio, window_seconds=0.5, hop_seconds=4.0,
                              top_k=1, threshold=0.0, sampling_rate=RATE)
    assert timeline.starts.tolist() == [0.0, 4.0, 8.0]
    assert timeline.ends.tolist() == [0.5, 4.5, 8.5]
    slices = [audio[i * 4 * RATE:i * 4 * RATE + RATE // 2] for i in range(3)]
    np.testing.assert_allclose(
        timeline.scores, classifier.predict_scores(slices, verbose=0),
        atol=1e-4)
    windows = set(zip(timeline.starts.tolist(), timeline.ends.tolist()))
    assert len(timeline.events) == 3  # each window votes for its best
    assert all((e.onset, e.offset) in windows for e in timeline.events)


def test_tag_short_recordings_windows_and_errors(classifier):
    short, longer = recording(0.5, seed=1), recording(4.0, seed=2)
    timelines = classifier.tag([short, longer], window_seconds=1.0,
                               hop_seconds=0.25, sampling_rate=RATE)
    assert len(timelines[0].starts) == 1
    assert timelines[0].ends[0] == pytest.approx(0.5)
    assert timelines[1].starts[:3].tolist() == [0.0, 0.25, 0.5]
    alone = classifier.tag(longer, window_seconds=1.0, hop_seconds=0.25,
                           sampling_rate=RATE)
    np.testing.assert_allclose(alone.scores, timelines[1].scores, atol=1e-5)
    with pytest.raises(ValueError, match="longer than the model's input"):
        classifier.tag(longer, window_seconds=5.0, sampling_rate=RATE)


# --- keras-ast classify --------------------------------------------------


def test_files_decode_ahead_in_order_and_bad_ones_are_counted(
        tmp_path, monkeypatch):
    # Threads decode a bounded number of files ahead of the consumer; the
    # order stays the files' and a file that does not decode comes with
    # its error, for the caller to raise or skip.
    from keras_ast.data import audio_io
    from keras_ast.inference.files import decoded_files

    files = [write_stereo_wav(str(tmp_path / f"{i}.wav"), seconds=0.2,
                              seed=i) for i in range(6)]
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    files.insert(2, str(tmp_path / "bad.wav"))
    started, lock = [], threading.Lock()
    load = audio_io.load_audio

    def recording_load(path, rate):
        with lock:
            started.append(path)
        return load(path, rate)

    monkeypatch.setattr(audio_io, "load_audio", recording_load)
    stream = decoded_files(files, RATE, ahead=2, workers=2)
    first_path, first, error = next(stream)
    assert error is None
    deadline = time.monotonic() + 10
    while len(started) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert started[:3] == files[:3]  # two past the one yielded, no more
    assert len(started) == 3
    rest = list(stream)
    assert [first_path] + [path for path, _, _ in rest] == files
    np.testing.assert_array_equal(first, load(files[0], RATE))
    errors = [(path, error) for path, waveform, error in rest
              if error is not None]
    assert [path for path, _ in errors] == [files[2]]
    assert isinstance(errors[0][1], audio_io.AudioDecodeError)
    assert errors[0][1].reason and rest[1][1] is None


def test_a_file_that_does_not_decode_raises_unless_skipped(classifier,
                                                          tmp_path):
    from keras_ast.data.audio_io import AudioDecodeError

    good = write_stereo_wav(str(tmp_path / "good.wav"), seconds=0.5)
    bad = str(tmp_path / "bad.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    gone = str(tmp_path / "gone.wav")
    clip = noise(0.5)
    for call in (classifier.classify, classifier.tag):
        with pytest.raises(AudioDecodeError,
                           match=r"^Could not decode .*bad\.wav: "):
            call([good, bad])
        with pytest.raises(AudioDecodeError, match="gone.wav: no such file"):
            call(gone)
    results, skipped = classifier.classify(
        [good, bad, clip, gone], top_k=2, sampling_rate=RATE,
        skip_errors=True)
    assert [result is None for result in results] == [False, True, False,
                                                      True]
    assert [path for path, _ in skipped] == [bad, gone]
    assert skipped[0][1] and skipped[1][1] == "no such file"
    for result, alone in ((results[0], classifier.classify(good, top_k=2)),
                          (results[2], classifier.classify(
                              clip, top_k=2, sampling_rate=RATE))):
        assert [label for label, _ in result] == [x for x, _ in alone]
        np.testing.assert_allclose([s for _, s in result],
                                   [s for _, s in alone], atol=1e-5)
    timelines, skipped = classifier.tag([bad, good], window_seconds=0.25,
                                        skip_errors=True)
    assert timelines[0] is None and timelines[1].path == good
    assert [path for path, _ in skipped] == [bad]
    # Arguments are checked before any file is decoded.
    for call in (classifier.classify, classifier.tag):
        with pytest.raises(ValueError, match="batch_size must be at least"):
            call(gone, batch_size=0)
        with pytest.raises(ValueError, match="top_k must be"):
            call(gone, top_k=0)
    # One input: one result (or None) and the list, even with no error.
    assert classifier.classify(gone, skip_errors=True) == (
        None, [(gone, "no such file")])
    result, skipped = classifier.classify(good, top_k=1, skip_errors=True)
    assert skipped == [] and len(result) == 1


def test_files_score_in_batches_as_they_decode(classifier, tmp_path):
    # Files are scored a batch at a time as they decode; the scores are
    # those of the same clips given as arrays.
    paths = [write_stereo_wav(str(tmp_path / f"{i}.wav"),
                              seconds=0.3 + 0.15 * i, seed=i)
             for i in range(5)]
    clips = [keras_ast.load_audio(path) for path in paths]
    from_files = classifier.classify(paths, top_k=None, batch_size=2)
    from_arrays = classifier.classify(clips, top_k=None, sampling_rate=RATE)
    for got, expected in zip(from_files, from_arrays):
        assert [label for label, _ in got] == [x for x, _ in expected]
        np.testing.assert_allclose([s for _, s in got],
                                   [s for _, s in expected], atol=1e-5)
    timelines = classifier.tag(paths, window_seconds=0.5, batch_size=3)
    alone = classifier.tag(clips, window_seconds=0.5, sampling_rate=RATE)
    assert [t.path for t in timelines] == paths
    for got, expected in zip(timelines, alone):
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5)
        assert [(e.label, e.onset, e.offset) for e in got.events] == [
            (e.label, e.onset, e.offset) for e in expected.events]


def test_api_and_cli_decode_files_the_same_way(preset, classifier, tmp_path,
                                               monkeypatch, capsys):
    from keras_ast.data import audio_io

    paths = [write_stereo_wav(str(tmp_path / f"{i}.wav"), seconds=0.4,
                              seed=i) for i in range(3)]
    threads, load = [], audio_io.load_audio

    def recorded(path, rate):
        threads.append(threading.current_thread().name)
        return load(path, rate)

    monkeypatch.setattr(audio_io, "load_audio", recorded)
    api = classifier.classify(paths, top_k=3)
    assert len(threads) == 3
    assert all(name.startswith("decode") for name in threads)
    threads.clear()
    assert cli.main(["classify", *paths, "--preset", preset, "--top-k", "3",
                     "--format", "json", "--no-progress"]) == 0
    assert len(threads) == 3
    assert all(name.startswith("decode") for name in threads)
    out = json.loads(capsys.readouterr().out)
    assert [entry["path"] for entry in out] == paths
    for entry, labels in zip(out, api):
        assert [item["label"] for item in entry["labels"]] == [
            label for label, _ in labels]
        np.testing.assert_allclose(
            [item["score"] for item in entry["labels"]],
            [score for _, score in labels], atol=1e-5)


def test_cli_classify_json_and_a_corrupt_file(preset, classifier, tmp_path,
                                              capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    good = write_stereo_wav(str(folder / "a_stereo.wav"))
    write_stereo_wav(str(folder / "b_other.wav"), seed=4)
    (folder / "c_corrupt.wav").write_bytes(b"RIFF not really a wav")
    status = cli.main(["classify", good, "--preset", preset, "--top-k", "3",
                       "--format", "json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    expected = classifier.predict_scores([keras_ast.load_audio(good)],
                                         verbose=0)[0]
    assert out[0]["path"] == good and len(out[0]["labels"]) == 3
    np.testing.assert_allclose([item["score"] for item in out[0]["labels"]],
                               np.sort(expected)[::-1], atol=1e-5)
    status = cli.main(["classify", str(folder), "--preset", preset,
                       "--format", "csv", "--top-k", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [row["path"].split("/")[-1] for row in rows] == [
        "a_stereo.wav", "b_other.wav"]
    assert "skipped" in captured.err and "c_corrupt.wav" in captured.err


def test_cli_classify_in_bfloat16(preset, classifier, tmp_path, capsys):
    good = write_stereo_wav(str(tmp_path / "a.wav"))
    status = cli.main(["classify", good, "--preset", preset, "--top-k", "3",
                       "--format", "json", "--dtype", "mixed_bfloat16",
                       "--no-progress"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    expected = np.sort(classifier.predict_scores(
        [keras_ast.load_audio(good)], verbose=0)[0])[::-1]
    scores = [item["score"] for item in out[0]["labels"]]
    # bfloat16 keeps 8 bits of mantissa: close to float32, not equal.
    np.testing.assert_allclose(scores, expected, atol=0.03)
    assert np.abs(np.array(scores) - expected).max() > 0


def test_cli_timeline_to_files(preset, tmp_path, capsys):
    path = str(tmp_path / "long.wav")
    soundfile.write(path, recording(12.0, seed=5), RATE)
    for fmt in ("json", "csv"):
        target = str(tmp_path / f"events.{fmt}")
        status = cli.main(["classify", path, "--preset", preset,
                           "--timeline", "--hop", "0.5", "--threshold", "0.5",
                           "--format", fmt, "--output", target])
        assert status == 0
    events = json.load(open(tmp_path / "events.json"))[0]["events"]
    rows = list(csv.DictReader(open(tmp_path / "events.csv")))
    assert len(events) == len(rows) > 0
    assert {"label", "onset", "offset", "score"} <= set(events[0])
    assert all(float(r["offset"]) > float(r["onset"]) for r in rows)
    status = cli.main(["classify", path, "--preset", preset, "--timeline"])
    assert status == 0 and "long.wav (12.00 s)" in capsys.readouterr().out


def test_cli_timeline_with_a_hop_longer_than_the_window(preset, tmp_path,
                                                      capsys):
    path = str(tmp_path / "long.wav")
    soundfile.write(path, recording(12.0, seed=3), RATE)
    status = cli.main(["classify", path, "--preset", preset, "--timeline",
                       "--window", "0.5", "--hop", "4", "--top-k", "1",
                       "--threshold", "0", "--format", "json"])
    assert status == 0
    events = json.loads(capsys.readouterr().out)[0]["events"]
    assert sorted((e["onset"], e["offset"]) for e in events) == [
        (0.0, 0.5), (4.0, 4.5), (8.0, 8.5)]


def test_cli_names_the_long_files_in_one_line(preset, classifier, tmp_path,
                                              capsys):
    # The model hears 1.01 s: a longer file is classified on its start,
    # said once on standard error, with no Python warning.
    long_a, long_b, short = (str(tmp_path / name) for name in
                             ("long_a.wav", "long_b.wav", "short.wav"))
    soundfile.write(long_a, recording(3.0, seed=1), RATE)
    soundfile.write(long_b, recording(2.0, seed=2), RATE)
    soundfile.write(short, recording(1.0, seed=3), RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert cli.main(["classify", long_a, short, "--preset", preset,
                         "--format", "json", "--no-progress"]) == 0
        captured = capsys.readouterr()
        assert captured.err == (
            f"keras-ast classify: {long_a} (3.00 s) is longer than the "
            "model's input (1.01 s): only its first 1.01 s were "
            "classified; --timeline tags every window.\n")
        assert cli.main(["classify", str(tmp_path), "--preset", preset,
                         "--no-progress"]) == 0
        err = capsys.readouterr().err
    assert err.startswith(f"keras-ast classify: {long_a} (3.00 s) and 1 "
                          "more file are longer")
    assert len(err.splitlines()) == 1
    # The labels of the file's start, as classify gives them.
    start = recording(3.0, seed=1)[:classifier.preprocessor.num_samples]
    (_, expected), = classifier.classify(start, top_k=1, sampling_rate=RATE)
    assert json.loads(captured.out)[0]["labels"][0]["score"] == (
        pytest.approx(expected, abs=1e-5))


def test_cli_timeline_usage_errors_are_one_line(preset, tmp_path, capsys):
    path = str(tmp_path / "clip.wav")
    soundfile.write(path, recording(2.0, seed=7), RATE)
    for extra, message in ((["--window", "1000"], "window_seconds=1000.0 is "
                            "longer than the model's input"),
                           (["--hop", "0"], "must each be at least one "
                            "sample")):
        status = cli.main(["classify", path, "--preset", preset,
                           "--timeline", "--no-progress"] + extra)
        err = capsys.readouterr().err
        assert status == 2
        assert err.startswith("keras-ast classify: error: ") and message in err
        assert len(err.strip().splitlines()) == 1


def test_cli_plot_writes_the_picture(preset, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from keras_ast import plot

    titles, report = [], plot.file_report

    def recorded(*args, **kwargs):
        figure = report(*args, **kwargs)
        titles.append(figure.get_suptitle())
        return figure

    monkeypatch.setattr(plot, "file_report", recorded)
    path = str(tmp_path / "clip.wav")
    soundfile.write(path, recording(3.0, seed=6), RATE)
    for extra in ([], ["--timeline"]):
        picture = tmp_path / f"plot{len(extra)}.png"
        status = cli.main(["classify", path, "--preset", preset,
                           "--plot", str(picture), "--format", "json"]
                          + extra)
        assert status == 0
        assert picture.stat().st_size > 1000
    assert titles == ["clip.wav (3.00 s)"] * 2
    assert cli.main(["classify", path, path, "--preset", preset,
                     "--plot", str(tmp_path / "x.png")]) == 2
