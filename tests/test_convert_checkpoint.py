"""`keras-ast convert` (`keras_ast.cli.convert` over
`keras_ast.porting.convert`): hub-format and original `.pth` sources,
through the CLI, the Python function and the `tools/convert_checkpoint.py`
wrapper."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import TOOLS
from conftest import make_reference

from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.porting.convert import ConversionError
from keras_ast.porting.convert import SourceError
from keras_ast.porting.convert import VerificationError
from keras_ast.porting.convert import convert_checkpoint
from keras_ast.presets.original import geometry_from_file_name
from keras_ast.utils.files import sha256_file

HEAVY = ("keras", "tensorflow", "jax", "torch", "transformers",
         "huggingface_hub")


def convert(*args):
    """`keras-ast convert ARGS...`'s exit status."""
    return cli.main(["convert", *args])


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


def test_pth_with_geometry_from_file_name(tmp_path, capsys):
    path, model, _ = make_pth(tmp_path, "speech_commands",
                              "speechcommands_10_10_0.9812.pth")
    output = str(tmp_path / "preset")
    # Heads cannot be read off the tensors; DeiT's width / 64 is the
    # default, this tiny model has 4.
    assert convert("--source", path, "--output", output,
                   "--num-heads", "4") == 0
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
    # A converted preset round-trips through save_to_preset.
    again = str(tmp_path / "again")
    classifier.save_to_preset(again)
    assert_same_logits(again, model)


def test_pth_with_flags_and_labels_and_verify(tmp_path, capsys, speech):
    path, model, _ = make_pth(tmp_path, "audioset_16_16", "my_ast.pth")
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text("index,mid,display_name\n" + "".join(
        f'{i},/m/{i},"Sound {i}"\n' for i in range(527)))
    output = str(tmp_path / "preset")
    args = ["--source", path, "--output", output, "--labels", str(labels),
            "--num-heads", "4"]
    # No geometry in the name nor in the flags: the flags are named.
    assert convert(*args) == 1
    assert "--frequency-stride" in capsys.readouterr().err
    wrong = args + ["--frequency-stride", "10", "--time-stride", "10",
                    "--max-length", "1024"]
    assert convert(*wrong) == 2
    assert "position embeddings" in capsys.readouterr().err
    right = args + ["--frequency-stride", "16", "--time-stride", "16",
                    "--max-length", "1024", "--multi-label", "--verify"]
    assert convert(*right) == 0
    printed = capsys.readouterr().out
    assert "verify: largest logit difference" in printed and "(ok," in printed
    classifier = assert_same_logits(output, model)
    assert classifier.labels[3] == "Sound 3"
    assert classifier.multi_label is True
    metadata = json.load(open(os.path.join(output, "metadata.json")))
    assert metadata["verified_max_abs_logit_difference"] <= 1e-3


def test_python_function(tmp_path):
    """`convert_checkpoint` returns what it did and raises what stops it."""
    path, model, _ = make_pth(tmp_path, "speech_commands", "tiny.pth")
    output = tmp_path / "preset"
    with pytest.raises(ConversionError, match="frequency_stride"):
        convert_checkpoint(path, output, num_heads=4)
    result = convert_checkpoint(
        path, output, frequency_stride=10, time_stride=10, max_length=128,
        num_heads=4, labels=[f"word_{i}" for i in range(35)],
        multi_label=False)
    assert result.output == str(output)
    assert result.max_abs_logit_difference is None
    assert result.uploaded_to is None
    assert result.classifier.labels[:2] == ["word_0", "word_1"]
    assert ASTClassifier.from_preset(str(output)).labels[34] == "word_34"
    assert_same_logits(str(output), model)
    not_a_checkpoint = tmp_path / "empty"
    not_a_checkpoint.mkdir()
    with pytest.raises(SourceError, match="config.json"):
        convert_checkpoint(not_a_checkpoint, tmp_path / "other")
    assert not os.path.exists(tmp_path / "other")


def test_hub_format_source_and_failed_verify(tmp_path, reference, capsys,
                                             speech):
    directory, model, _ = reference("speech_commands")
    output = str(tmp_path / "preset")
    # A tolerance no float computation meets: exit 1, nothing written.
    assert convert("--source", directory, "--output", output,
                   "--verify", "--tolerance", "-1") == 1
    captured = capsys.readouterr()
    assert "TOO LARGE" in captured.out and "35 classes" in captured.out
    assert "nothing was written" in captured.err
    assert not os.path.exists(output)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    with pytest.raises(VerificationError) as raised:
        convert_checkpoint(directory, output, verify=True, tolerance=-1)
    assert raised.value.difference >= 0
    assert not os.path.exists(output)
    assert convert("--source", directory, "--output", output,
                   "--verify") == 0
    classifier = assert_same_logits(output, model)
    assert classifier.labels == [f"class_{i}" for i in range(35)]
    metadata = json.load(open(os.path.join(output, "metadata.json")))
    assert metadata["source_sha256"] == {
        "model.safetensors": sha256_file(
            os.path.join(directory, "model.safetensors"))}


def test_pickle_that_runs_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "audioset_10_10_0.4593.pth"
    with open(path, "wb") as f:
        pickle.dump({"module.v.cls_token": Payload()}, f)
    output = str(tmp_path / "preset")
    assert convert("--source", str(path), "--output", output) == 2
    assert "Refusing to load" in capsys.readouterr().err
    assert not marker.exists()
    assert not os.path.exists(output)


def run_python(*args):
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, timeout=300)


def test_tools_wrapper_runs():
    """The documented `python tools/convert_checkpoint.py` still works."""
    done = run_python(os.path.join(TOOLS, "convert_checkpoint.py"), "--help")
    assert done.returncode == 0, done.stderr
    assert "--source" in done.stdout and "--verify" in done.stdout


@pytest.mark.parametrize("argv", [["--help"], ["convert", "--help"],
                                  ["upload", "--help"]])
def test_help_loads_no_framework(argv):
    """`keras-ast [convert|upload] --help` answer without Keras & co."""
    script = (
        "import sys\n"
        "from keras_ast.cli import main as cli\n"
        "try:\n"
        f"    cli.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = run_python("-c", script)
    assert done.returncode == 0, done.stderr
    assert "usage: keras-ast" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "LOADED []"
