"""keras_ast.plot: figures of the real features, scores and attention."""

import sys

import numpy as np
import pytest
from conftest import noise
from conftest import to_numpy

pytest.importorskip("matplotlib")

from keras_ast import ASTAudioConverter  # noqa: E402
from keras_ast import ASTBackbone  # noqa: E402
from keras_ast import ASTClassifier  # noqa: E402
from keras_ast import plot  # noqa: E402
from keras_ast.inference.timeline import Timeline  # noqa: E402
from keras_ast.inference.timeline import merge_events  # noqa: E402

MAX_LENGTH = 100


@pytest.fixture(scope="module")
def converter():
    return ASTAudioConverter(max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def classifier(converter):
    backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=MAX_LENGTH)
    return ASTClassifier(backbone, num_classes=3, preprocessor=converter,
                         labels=["a", "b", "c"])


def make_timeline(duration=3.0, path="/recordings/street.wav"):
    """Windows of 1 s every 0.5 s over 15 classes; three events."""
    rng = np.random.default_rng(0)
    starts = np.arange(0.0, duration - 0.5, 0.5)
    ends = np.minimum(starts + 1.0, duration)
    labels = [f"class_{i}" for i in range(15)]
    scores = rng.uniform(0.0, 0.3, (len(starts), 15)).astype(np.float32)
    scores[1:3, 4] = 0.9
    scores[3:, 7] = 0.7
    scores[0, 12] = 0.45  # an event, but not among the top 2 classes
    scores[2, 9] = 0.35  # a top class by max score, no event
    events = merge_events(starts, ends, scores, labels, top_k=1,
                          threshold=0.4)
    return Timeline(starts=starts, ends=ends, scores=scores, labels=labels,
                    events=events, duration=duration, path=path)


def saved(figure, tmp_path, name):
    path = tmp_path / f"{name}.png"
    figure.savefig(path)
    assert path.exists() and path.stat().st_size > 0
    return path


def data_axes(figure):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def test_spectrogram_draws_only_the_frames_that_hold_audio(tmp_path,
                                                           converter):
    waveform = noise(0.5)
    figure = plot.spectrogram(waveform, converter=converter, title="noise")
    (ax,) = data_axes(figure)
    image = ax.images[0]
    frames = 1 + (8000 - 400) // 160
    assert frames == 48
    assert image.get_array().shape == (128, frames)
    np.testing.assert_allclose(
        image.get_array(), to_numpy(converter(waveform))[0, :frames].T,
        atol=1e-6)
    np.testing.assert_allclose(image.get_extent(), [0, 0.48, 0, 128])
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "mel bin"
    assert ax.get_title() == "noise"
    assert len(figure.axes) == 2  # and a colorbar
    saved(figure, tmp_path, "spectrogram")


def test_spectrogram_of_a_long_waveform_is_exact(converter):
    # 2.5 s is 248 frames: three converter pieces of up to 100 frames,
    # which must join into what one 300-frame call computes.
    waveform = noise(2.5, seed=1)
    frames = 1 + (len(waveform) - 400) // 160
    expected = to_numpy(ASTAudioConverter(max_length=300)(waveform))[0]
    for batch_size in (1, 8):
        features = plot.waveform_features(waveform, converter, batch_size)
        assert features.shape == (frames, 128)
        np.testing.assert_allclose(features, expected[:frames], atol=1e-4)
    figure = plot.spectrogram(waveform, converter=converter)
    assert data_axes(figure)[0].images[0].get_array().shape == (128, frames)


def test_spectrogram_of_a_short_clip_and_of_features(tmp_path):
    from matplotlib.figure import Figure

    short = plot.spectrogram(noise(0.01), converter=ASTAudioConverter(
        max_length=MAX_LENGTH))  # 160 samples: less than one frame
    assert data_axes(short)[0].images[0].get_array().shape == (128, 1)

    features = np.random.default_rng(2).normal(size=(60, 128))
    own = Figure()
    ax = own.add_subplot()
    assert plot.spectrogram(features, ax=ax) is own
    np.testing.assert_allclose(ax.images[0].get_array(), features.T,
                               atol=1e-6)
    np.testing.assert_allclose(ax.images[0].get_extent(), [0, 0.6, 0, 128])
    saved(own, tmp_path, "features")
    with pytest.raises(ValueError, match="shape"):
        plot.spectrogram(np.zeros((2, 3, 4)))


def test_window_edges():
    # Windows that do not overlap are their own cells.
    np.testing.assert_allclose(
        plot.window_edges([0.0, 10.0, 20.0], [10.0, 20.0, 25.0]),
        [0, 10, 20, 25])
    # Overlapping ones split each overlap in the middle.
    np.testing.assert_allclose(
        plot.window_edges([0.0, 5.0, 10.0], [10.0, 15.0, 17.0]),
        [0, 7.5, 12.5, 17])
    np.testing.assert_allclose(plot.window_edges([0.0], [0.4]), [0, 0.4])


def test_timeline_shows_top_classes_and_every_event(tmp_path):
    timeline = make_timeline()
    assert {e.label for e in timeline.events} == {
        "class_4", "class_7", "class_12"}
    figure = plot.timeline(timeline, top_k=2)
    (ax,) = data_axes(figure)
    rows = [label.get_text() for label in ax.get_yticklabels()]
    # The two highest, highest on top, then the event class.
    assert rows == ["class_4", "class_7", "class_12"]
    assert {e.label for e in timeline.events} <= set(rows)

    mesh = ax.collections[0]
    columns = [timeline.labels.index(name) for name in rows]
    np.testing.assert_allclose(
        np.asarray(mesh.get_array()).reshape(len(rows), -1),
        timeline.scores[:, columns].T)
    outlines = ax.patches
    assert len(outlines) == len(timeline.events)
    for outline, event in zip(outlines, timeline.events):
        assert outline.get_x() == pytest.approx(event.onset)
        assert outline.get_width() == pytest.approx(
            event.offset - event.onset)
        row = outline.get_y() + outline.get_height() / 2
        assert row == pytest.approx(rows.index(event.label))
    assert ax.get_xlim() == pytest.approx((0.0, timeline.duration))
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_title() == "street.wav"
    saved(figure, tmp_path, "timeline")

    everything = plot.timeline(timeline, top_k=None)
    assert len(data_axes(everything)[0].get_yticklabels()) == 15
    assert plot.timeline_rows(timeline, top_k=0) == [4, 7, 12]


def test_attention_overlay_is_the_cls_attention(tmp_path, classifier):
    backbone = classifier.backbone
    waveform = noise(0.6, seed=3)
    figure = plot.attention(classifier, waveform)
    (ax,) = data_axes(figure)
    spectrogram, overlay = ax.images
    frames = 1 + (len(waveform) - 400) // 160
    assert spectrogram.get_array().shape == (128, frames)

    grid = np.asarray(overlay.get_array())
    assert backbone.token_grid == (12, 9)
    assert grid.shape == backbone.token_grid
    # The real thing: the last layer's attention maps, [CLS] row, patches.
    features = classifier.preprocessor(waveform)
    maps = to_numpy(backbone.hidden_states(features)["attentions"][-1])
    cls = maps[0, :, 0, 2:]
    np.testing.assert_allclose(grid, cls.mean(axis=0).reshape(12, 9),
                               atol=1e-5)
    assert grid.sum() == pytest.approx(cls.sum(axis=-1).mean(), abs=1e-4)
    assert 0.5 < grid.sum() <= 1.0
    # Cells centred on their patches: frame t * 10 + 8, bin f * 10 + 8.
    left, right, bottom, top = overlay.get_extent()
    assert (left, right) == pytest.approx((0.03, 0.93))
    assert (bottom, top) == pytest.approx((3, 123))
    assert ax.get_xlim() == pytest.approx((0.0, frames * 0.01))
    assert "padding" in ax.get_title()
    saved(figure, tmp_path, "attention")


def test_attention_needs_a_preprocessor(classifier):
    bare = ASTClassifier(classifier.backbone, num_classes=3)
    with pytest.raises(ValueError, match="preprocessor"):
        plot.attention(bare, noise(0.5))


def test_file_report(tmp_path, classifier):
    waveform = noise(3.0, seed=4)
    timeline = make_timeline(duration=3.0)
    figure = plot.file_report(classifier, waveform, timeline)
    top, bottom = data_axes(figure)
    frames = 1 + (len(waveform) - 400) // 160
    assert top.images[0].get_array().shape == (128, frames)
    assert len(bottom.patches) == len(timeline.events)
    assert top.get_shared_x_axes().joined(top, bottom)
    assert top.get_xlim() == pytest.approx((0.0, 3.0))
    assert bottom.get_xlim() == pytest.approx((0.0, 3.0))
    assert "street.wav" in figure.get_suptitle()
    saved(figure, tmp_path, "report")

    alone = plot.file_report(classifier, waveform)
    (ax,) = data_axes(alone)
    assert ax.images[0].get_array().shape == (128, frames)
    assert ax.get_xlabel() == "time (s)"
    assert alone.get_suptitle() == "recording (3.00 s)"
    named = plot.file_report(classifier, waveform, path="/sounds/dog.wav")
    assert named.get_suptitle() == "dog.wav (3.00 s)"
    saved(alone, tmp_path, "report_alone")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install keras-ast\[plot\]"):
        plot.spectrogram(np.zeros((10, 128)))
    with pytest.raises(ImportError, match=r"keras-ast\[plot\]"):
        plot.timeline(make_timeline())
