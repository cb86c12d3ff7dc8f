"""Built-in presets, hf:// through the hub cache offline, new heads and
position-embedding adaptation."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import noise
from conftest import reference_logits

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.ops.patches import adapt_position_embedding
from keras_ast.presets.builtin import BUILTIN_PRESETS

NAMES = [
    "ast_audioset_10_10_0.4593", "ast_audioset_10_10_0.450",
    "ast_audioset_10_10_0.448", "ast_audioset_10_10_0.448_v2",
    "ast_audioset_12_12_0.447", "ast_audioset_14_14_0.443",
    "ast_audioset_16_16_0.442", "ast_speech_commands_v2",
]


def test_builtin_presets_are_listed():
    for cls in (ASTClassifier, ASTBackbone, ASTAudioConverter):
        assert sorted(cls.presets) == sorted(NAMES)
    table = ASTClassifier.presets
    assert table["ast_audioset_10_10_0.448_v2"]["hf_repo"] == (
        "MIT/ast-finetuned-audioset-10-10-0.448-v2")
    assert table["ast_audioset_16_16_0.442"]["hf_repo"] == (
        "MIT/ast-finetuned-audioset-16-16-0.442")
    assert table["ast_speech_commands_v2"]["hf_repo"] == (
        "MIT/ast-finetuned-speech-commands-v2")
    for name, preset in table.items():
        assert preset["description"]
        assert preset["score"]["value"] > 0.4
        stride = preset["frequency_stride"]
        assert f"_{stride}_{stride}" in name or name.endswith("_v2")


def test_parameter_counts_are_those_of_the_models():
    geometries = {}
    for name, preset in BUILTIN_PRESETS.items():
        key = (preset["frequency_stride"], preset["time_stride"],
               preset["max_length"], preset["num_classes"])
        geometries.setdefault(key, set()).add(preset["parameter_count"])
    for (fstride, tstride, length, classes), counts in geometries.items():
        # Count without allocating 86M parameters: shapes alone.
        backbone = ASTBackbone(num_layers=1, frequency_stride=fstride,
                               time_stride=tstride, max_length=length)
        per_layer = backbone.encoder_layers[0].count_params()
        total = backbone.count_params() + 11 * per_layer
        total += 2 * 768 + 768 * classes + classes  # head
        assert counts == {total}, (fstride, tstride, length)


def fill_hub_cache(hf_home, repo_id, source_dir):
    """Lays out a checkpoint as huggingface_hub's cache holds a download."""
    folder = os.path.join(hf_home, "hub",
                          "models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = os.path.join(folder, "snapshots", commit)
    shutil.copytree(source_dir, snapshot)
    os.makedirs(os.path.join(folder, "refs"))
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(commit)


OFFLINE_LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras_ast

    clips = [np.load(sys.argv[1])]
    out = {}
    for preset in ("ast_speech_commands_v2",
                   "hf://MIT/ast-finetuned-speech-commands-v2",
                   "MIT/ast-finetuned-speech-commands-v2"):
        classifier = keras_ast.ASTClassifier.from_preset(preset)
        out[preset] = classifier.predict(clips, verbose=0).tolist()
    for key, preset in (
            ("error", "ast_audioset_16_16_0.442"),
            ("bare_error", "MIT/ast-finetuned-audioset-10-10-0.450")):
        try:
            keras_ast.ASTClassifier.from_preset(preset)
        except Exception as error:
            out[key] = [type(error).__name__, str(error)]
    print(json.dumps(out))
    """
)


@pytest.mark.large  # another process
def test_offline_hub_cache(tmp_path, reference):
    directory, model, extractor = reference("speech_commands")
    hf_home = str(tmp_path / "hf_home")
    fill_hub_cache(hf_home, "MIT/ast-finetuned-speech-commands-v2",
                   directory)
    clip = noise(1.0, seed=5)
    np.save(tmp_path / "clip.npy", clip)
    env = dict(os.environ, HF_HOME=hf_home, HF_HUB_OFFLINE="1",
               CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD, str(tmp_path / "clip.npy")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = reference_logits(model, extractor, [clip])
    # A built-in name, hf:// and the bare hub id transformers users type.
    for preset in ("ast_speech_commands_v2",
                   "hf://MIT/ast-finetuned-speech-commands-v2",
                   "MIT/ast-finetuned-speech-commands-v2"):
        np.testing.assert_allclose(out[preset], expected, atol=1e-3)
    # Not cached, and offline: one clear error naming the repository.
    for key, repo in (
            ("error", "MIT/ast-finetuned-audioset-16-16-0.442"),
            ("bare_error", "MIT/ast-finetuned-audioset-10-10-0.450")):
        kind, message = out[key]
        assert kind == "PresetNotFoundError"
        assert f"hf://{repo}" in message
        assert "HF_HUB_OFFLINE=1" in message
        assert "Traceback" not in message


def test_unknown_preset_name():
    with pytest.raises(FileNotFoundError, match="Unknown preset 'ast_nope'"):
        ASTClassifier.from_preset("ast_nope")
    # Not a hub id either: a path with more than one separator.
    with pytest.raises(FileNotFoundError, match="Unknown preset"):
        ASTClassifier.from_preset("no/such/folder")


def torch_adapt(table, old_grid, new_grid):
    """The authors' rule, as their code wrote it (torch)."""
    import torch

    table = torch.from_numpy(table)
    f_old, t_old = old_grid
    f_new, t_new = new_grid
    dim = table.shape[-1]
    grid = table[:, 2:].reshape(1, f_old, t_old, dim).permute(0, 3, 1, 2)
    if t_new < t_old:
        start = t_old // 2 - t_new // 2
        grid = grid[:, :, :, start:start + t_new]
    elif t_new > t_old:
        grid = torch.nn.functional.interpolate(grid, size=(f_old, t_new),
                                               mode="bilinear")
    if f_new < f_old:
        start = f_old // 2 - f_new // 2
        grid = grid[:, :, start:start + f_new, :]
    elif f_new > f_old:
        grid = torch.nn.functional.interpolate(grid, size=(f_new, t_new),
                                               mode="bilinear")
    grid = grid.permute(0, 2, 3, 1).reshape(1, f_new * t_new, dim)
    return torch.cat([table[:, :2], grid], 1).numpy()


@pytest.mark.parametrize("new_grid", [(12, 11), (12, 49), (12, 101),
                                      (12, 150), (14, 120), (6, 30)])
def test_position_embedding_adaptation_follows_the_authors(new_grid):
    table = np.random.default_rng(0).standard_normal(
        (1, 12 * 101 + 2, 8)).astype(np.float32)
    got = adapt_position_embedding(table, (12, 101), new_grid)
    assert got.shape == (1, new_grid[0] * new_grid[1] + 2, 8)
    # Both interpolate in float32, with their own kernels.
    np.testing.assert_allclose(got, torch_adapt(table, (12, 101), new_grid),
                               atol=1e-4)
    np.testing.assert_array_equal(got[:, :2], table[:, :2])


@pytest.mark.parametrize("max_length", [100, 512])
def test_from_preset_with_another_max_length(reference, max_length):
    directory, _, _ = reference("audioset")
    original = ASTClassifier.from_preset(directory)
    classifier = ASTClassifier.from_preset(directory, max_length=max_length)
    assert classifier.backbone.max_length == max_length
    assert classifier.preprocessor.max_length == max_length
    expected = adapt_position_embedding(
        keras.ops.convert_to_numpy(
            original.backbone.embedding.position_embedding),
        original.backbone.token_grid, classifier.backbone.token_grid,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(
            classifier.backbone.embedding.position_embedding),
        expected, atol=1e-6)
    # Everything else is the checkpoint's, head included.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(classifier.head_dense.kernel),
        keras.ops.convert_to_numpy(original.head_dense.kernel))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(
            classifier.backbone.encoder_layers[1].query.kernel),
        keras.ops.convert_to_numpy(
            original.backbone.encoder_layers[1].query.kernel))
    assert classifier.predict([noise(max_length / 100)],
                              verbose=0).shape == (1, 527)


def test_keras_preset_with_another_max_length_and_new_head(tmp_path,
                                                           reference):
    directory, _, _ = reference("speech_commands")
    target = str(tmp_path / "preset")
    ASTClassifier.from_preset(directory).save_to_preset(target)
    classifier = ASTClassifier.from_preset(target, max_length=200,
                                           num_classes=3)
    assert classifier.num_classes == 3 and classifier.labels is None
    assert classifier.backbone.token_grid == (12, 19)
    assert classifier.preprocessor.max_length == 200
