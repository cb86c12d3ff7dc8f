"""keras_ast.plot.reconstruction: the input, the mask and the
reconstruction of a clip, each the numbers `ASTPretrainer.reconstruct`
gives, rebuilt here by hand."""

import numpy as np
import pytest
from conftest import noise
from conftest import to_numpy

pytest.importorskip("matplotlib")

from keras_ast import ASTAudioConverter  # noqa: E402
from keras_ast import ASTBackbone  # noqa: E402
from keras_ast import ASTPretrainer  # noqa: E402
from keras_ast import plot  # noqa: E402

MAX_LENGTH = 64
PATCH = 16
F_STRIDE, T_STRIDE = 16, 8  # patches overlap along time
GRID = (8, 7)  # (128 - 16) // 16 + 1, (64 - 16) // 8 + 1


@pytest.fixture(scope="module")
def pretrainer():
    backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=MAX_LENGTH,
                           frequency_stride=F_STRIDE, time_stride=T_STRIDE)
    return ASTPretrainer(backbone, ASTAudioConverter(max_length=MAX_LENGTH),
                         mask_ratio=0.5, seed=0)


def grid_mask(seed=0):
    """Half of the (8, 7) patches, chosen at random."""
    rng = np.random.default_rng(seed)
    flat = np.zeros(GRID[0] * GRID[1], bool)
    flat[rng.choice(flat.size, flat.size // 2, replace=False)] = True
    return flat.reshape(GRID)


def by_hand(features, mask, predictions):
    """(hidden values, reconstruction) of `(frames, bins)` features from
    the masked patches' predictions (ascending patch order), each patch
    brought back to its own mean and deviation, overlaps averaged."""
    total = np.zeros(features.shape)
    count = np.zeros(features.shape)
    for k, (f, t) in enumerate(zip(*np.nonzero(mask))):
        frames = slice(t * T_STRIDE, t * T_STRIDE + PATCH)
        bins = slice(f * F_STRIDE, f * F_STRIDE + PATCH)
        patch = features[frames, bins]  # (time, frequency)
        # Prediction pixel i * 16 + j: bin f * 16 + i, frame t * 8 + j.
        values = predictions[k].reshape(PATCH, PATCH).T
        total[frames, bins] += values * np.sqrt(patch.var() + 1e-6)
        total[frames, bins] += patch.mean()
        count[frames, bins] += 1
    hidden = count > 0
    rebuilt = np.where(hidden, total / np.maximum(count, 1), features)
    return hidden, rebuilt


def test_panels_are_the_input_the_mask_and_the_reconstruction(
        tmp_path, pretrainer):
    waveform = noise(0.5, seed=1)
    mask = grid_mask()
    figure = plot.reconstruction(pretrainer, waveform, mask=mask,
                                 title="noise")
    panels = figure.axes[:3]
    assert len(figure.axes) == 4  # and one colorbar
    assert figure.axes[3].get_label() == "<colorbar>"
    frames = 1 + (len(waveform) - 400) // 160  # 48: only the audio
    features = to_numpy(pretrainer.preprocessor(waveform))[0]
    out = pretrainer.reconstruct({"features": features[None]},
                                 mask=mask.reshape(1, -1))

    (inputs,) = panels[0].images
    np.testing.assert_allclose(inputs.get_array(), features[:frames].T,
                               atol=1e-6)
    grey, shade = panels[1].images
    np.testing.assert_allclose(grey.get_array(), features[:frames].T,
                               atol=1e-6)
    hidden, rebuilt = by_hand(features, mask, out["predictions"][0])
    assert 0 < hidden.mean() < 1
    np.testing.assert_array_equal(shade.get_array(), hidden[:frames].T)
    (drawn,) = panels[2].images
    np.testing.assert_allclose(drawn.get_array(), rebuilt[:frames].T,
                               atol=1e-4)
    # Visible values are the input's; hidden ones the decoder's.
    assert np.array_equal(drawn.get_array()[~hidden[:frames].T],
                          features[:frames].T[~hidden[:frames].T])
    assert not np.allclose(drawn.get_array()[hidden[:frames].T],
                           features[:frames].T[hidden[:frames].T])

    loss = np.mean(np.square(out["predictions"] - out["targets"]))
    assert f"loss {loss:.3f}" in panels[2].get_title()
    assert "28 of 56 patches (50%)" in panels[1].get_title()
    for ax in panels:
        assert ax.get_xlim() == pytest.approx((0.0, frames * 0.01))
        assert ax.get_ylim() == pytest.approx((0.0, 128.0))
    assert figure.get_suptitle() == "noise"
    # A 0.5 s clip: side by side.
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 1
    path = tmp_path / "reconstruction.png"
    figure.savefig(path)
    assert path.stat().st_size > 0


def test_features_a_token_order_mask_and_stacked_panels(pretrainer):
    features = to_numpy(pretrainer.preprocessor(noise(1.0, seed=2)))[0]
    mask = grid_mask(seed=3)
    grid = plot.reconstruction(pretrainer, features, mask=mask)
    flat = plot.reconstruction(pretrainer, features[None],
                               mask=mask.reshape(-1), stacked=True)
    for figure in (grid, flat):
        assert figure.axes[0].images[0].get_array().shape == (
            128, MAX_LENGTH)
    np.testing.assert_array_equal(grid.axes[1].images[1].get_array(),
                                  flat.axes[1].images[1].get_array())
    np.testing.assert_allclose(grid.axes[2].images[0].get_array(),
                               flat.axes[2].images[0].get_array(),
                               atol=1e-5)
    lefts = {round(ax.get_position().x0, 3) for ax in flat.axes[:3]}
    bottoms = [ax.get_position().y0 for ax in flat.axes[:3]]
    assert len(lefts) == 1 and bottoms == sorted(bottoms, reverse=True)
    # No mask: a random one of the pretrainer's ratio.
    drawn = plot.reconstruction(pretrainer, features)
    shade = np.asarray(drawn.axes[1].images[1].get_array())
    assert 0 < shade.mean() < 1
    assert "28 of 56 patches" in drawn.axes[1].get_title()


def test_bad_inputs_raise_clearly(pretrainer):
    with pytest.raises(TypeError, match="needs an ASTPretrainer"):
        plot.reconstruction(pretrainer.backbone, noise(0.5))
    with pytest.raises(ValueError, match=r"\(64, 128\)"):
        plot.reconstruction(pretrainer, np.zeros((100, 128), "float32"))
    with pytest.raises(ValueError, match="1-D waveform"):
        plot.reconstruction(pretrainer, np.zeros((2, 8000), "float32"))
    with pytest.raises(ValueError, match="empty waveform"):
        plot.reconstruction(pretrainer, np.zeros(0, "float32"))
    with pytest.raises(ValueError, match=r"\(8, 7\)"):
        plot.reconstruction(pretrainer, noise(0.5), mask=np.ones((7, 8)))
    with pytest.raises(ValueError, match="booleans"):
        plot.reconstruction(pretrainer, noise(0.5),
                            mask=grid_mask().astype(int) * 2)
    too_few = np.zeros(GRID, bool)
    too_few[0, :3] = True
    with pytest.raises(ValueError, match="exactly 28"):
        plot.reconstruction(pretrainer, noise(0.5), mask=too_few)
