"""tools/convert_checkpoint.py: hub-format and original `.pth` sources."""

import json
import os
import pickle

import numpy as np
import pytest
from conftest import load_tool
from conftest import make_reference

from keras_ast import ASTClassifier
from keras_ast.convert_original import geometry_from_file_name
from keras_ast.files import sha256_file



@pytest.fixture(scope="module")
def tool():
    return load_tool("convert_checkpoint")


def to_original(hf_state):
    """The inverse of the authors' -> transformers mapping, written out
    independently of keras_ast: what their training code saved."""
    import torch

    hf = "audio_spectrogram_transformer."
    out = {}
    rename = {
        "embeddings.cls_token": "v.cls_token",
        "embeddings.distillation_token": "v.dist_token",
        "embeddings.position_embeddings": "v.pos_embed",
        "embeddings.patch_embeddings.projection.weight":
            "v.patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.bias":
            "v.patch_embed.proj.bias",
        "layernorm.weight": "v.norm.weight",
        "layernorm.bias": "v.norm.bias",
    }
    layer_rename = {
        "layernorm_before": "norm1", "layernorm_after": "norm2",
        "attention.output.dense": "attn.proj",
        "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    }
    for name, value in hf_state.items():
        value = torch.as_tensor(np.asarray(value))
        if name.startswith("classifier."):
            part = "0" if ".layernorm." in name else "1"
            out[f"module.mlp_head.{part}.{name.rsplit('.', 1)[1]}"] = value
            continue
        name = name[len(hf):]
        if name in rename:
            out["module." + rename[name]] = value
            continue
        _, _, index, rest = name.split(".", 3)
        module, kind = rest.rsplit(".", 1)
        if module.startswith("attention.attention."):
            continue  # fused below
        out[f"module.v.blocks.{index}.{layer_rename[module]}.{kind}"] = value
    layers = {int(n.split(".")[3]) for n in hf_state if ".layer." in n}
    for index in layers:
        for kind in ("weight", "bias"):
            parts = [torch.as_tensor(np.asarray(hf_state[
                f"{hf}encoder.layer.{index}.attention.attention.{p}.{kind}"
            ])) for p in ("query", "key", "value")]
            out[f"module.v.blocks.{index}.attn.qkv.{kind}"] = torch.cat(parts)
    width = out["module.v.cls_token"].shape[-1]
    # DeiT's own heads, saved by the authors and unused by AST.
    out["module.v.head.weight"] = torch.zeros(1000, width)
    out["module.v.head.bias"] = torch.zeros(1000)
    out["module.v.head_dist.weight"] = torch.zeros(1000, width)
    out["module.v.head_dist.bias"] = torch.zeros(1000)
    return out


def make_pth(tmp_path, name, file_name):
    import torch
    from safetensors.numpy import load_file

    directory = str(tmp_path / f"hf_{name}")
    model, extractor = make_reference(name, directory, seed=7)
    state = to_original(load_file(os.path.join(directory,
                                               "model.safetensors")))
    path = str(tmp_path / file_name)
    torch.save(state, path)
    return path, model, extractor


def assert_same_logits(preset_dir, model):
    import torch

    classifier = ASTClassifier.from_preset(preset_dir, preprocessor=False)
    features = np.random.default_rng(0).standard_normal(
        (2, classifier.backbone.max_length, 128)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(features)).logits.numpy()
    np.testing.assert_allclose(classifier.predict(features, verbose=0),
                               expected, atol=1e-4)
    return ASTClassifier.from_preset(preset_dir)


def test_file_name_pattern():
    assert geometry_from_file_name("audioset_10_10_0.4593.pth") == {
        "dataset": "audioset", "frequency_stride": 10, "time_stride": 10,
        "max_length": 1024, "mean": -4.2677393, "std": 4.5689974,
        "multi_label": True,
    }
    sc = geometry_from_file_name("/x/speechcommands_10_10_0.9812.pth")
    assert (sc["max_length"], sc["mean"], sc["multi_label"]) == (
        128, -6.845978, False)
    assert geometry_from_file_name("esc50_12_12_0.95.pth")["max_length"] == (
        512)
    assert geometry_from_file_name("model.pth") is None


def test_pth_with_geometry_from_file_name(tmp_path, tool, capsys):
    path, model, _ = make_pth(tmp_path, "speech_commands",
                              "speechcommands_10_10_0.9812.pth")
    output = str(tmp_path / "preset")
    # Heads cannot be read off the tensors; DeiT's width / 64 is the
    # default, this tiny model has 4.
    assert tool.main(["--source", path, "--output", output,
                      "--num-heads", "4"]) == 0
    classifier = assert_same_logits(output, model)
    assert classifier.multi_label is False
    assert classifier.labels is None
    assert classifier.preprocessor.mean == pytest.approx(-6.845978)
    assert classifier.preprocessor.max_length == 128
    metadata = json.load(open(os.path.join(output, "metadata.json")))
    assert metadata["source"] == path
    assert metadata["source_sha256"] == {
        os.path.basename(path): sha256_file(path)}
    assert metadata["parameter_count"] == classifier.count_params()
    assert "keras" in metadata["versions"]
    assert "35 classes" in capsys.readouterr().out
    # A preset made by the tool round-trips through save_to_preset.
    again = str(tmp_path / "again")
    classifier.save_to_preset(again)
    assert_same_logits(again, model)


def test_pth_with_flags_and_labels_and_verify(tmp_path, tool, capsys,
                                              speech):
    path, model, _ = make_pth(tmp_path, "audioset_16_16", "my_ast.pth")
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text("index,mid,display_name\n" + "".join(
        f'{i},/m/{i},"Sound {i}"\n' for i in range(527)))
    output = str(tmp_path / "preset")
    args = ["--source", path, "--output", output, "--labels", str(labels),
            "--num-heads", "4"]
    with pytest.raises(SystemExit, match="--frequency-stride"):
        tool.main(args)
    wrong = args + ["--frequency-stride", "10", "--time-stride", "10",
                    "--max-length", "1024"]
    assert tool.main(wrong) == 2
    assert "position embeddings" in capsys.readouterr().err
    right = args + ["--frequency-stride", "16", "--time-stride", "16",
                    "--max-length", "1024", "--multi-label", "--verify"]
    assert tool.main(right) == 0
    printed = capsys.readouterr().out
    assert "verify: largest logit difference" in printed and "(ok," in printed
    classifier = assert_same_logits(output, model)
    assert classifier.labels[3] == "Sound 3"
    assert classifier.multi_label is True
    metadata = json.load(open(os.path.join(output, "metadata.json")))
    assert metadata["verified_max_abs_logit_difference"] <= 1e-3


def test_hub_format_source_and_failed_verify(tmp_path, tool, reference,
                                             capsys, speech):
    directory, model, _ = reference("speech_commands")
    output = str(tmp_path / "preset")
    # A tolerance no float computation meets: exit 1, nothing written.
    assert tool.main(["--source", directory, "--output", output,
                      "--verify", "--tolerance", "-1"]) == 1
    assert "TOO LARGE" in capsys.readouterr().out
    assert not os.path.exists(output)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    assert tool.main(["--source", directory, "--output", output,
                      "--verify"]) == 0
    classifier = assert_same_logits(output, model)
    assert classifier.labels == [f"class_{i}" for i in range(35)]
    metadata = json.load(open(os.path.join(output, "metadata.json")))
    assert metadata["source_sha256"] == {
        "model.safetensors": sha256_file(
            os.path.join(directory, "model.safetensors"))}


def test_pickle_that_runs_code_is_refused(tmp_path, tool, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "audioset_10_10_0.4593.pth"
    with open(path, "wb") as f:
        pickle.dump({"module.v.cls_token": Payload()}, f)
    output = str(tmp_path / "preset")
    assert tool.main(["--source", str(path), "--output", output]) == 2
    assert "Refusing to load" in capsys.readouterr().err
    assert not marker.exists()
    assert not os.path.exists(output)


def test_upload(tmp_path, tool, reference, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, exist_ok):
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", repo_id, sorted(os.listdir(folder_path))))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    output = str(tmp_path / "preset")
    assert tool.main(["--source", reference("speech_commands")[0],
                      "--output", output,
                      "--upload", "hf://someone/ast-sc"]) == 0
    assert calls[0] == ("create", "someone/ast-sc", True)
    assert calls[1][:2] == ("upload", "someone/ast-sc")
    assert "model.weights.h5" in calls[1][2]
