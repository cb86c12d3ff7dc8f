"""`keras_ast.upload_preset` and `keras-ast upload`, with a fake hub.

`huggingface_hub.HfApi` is replaced by a recorder: nothing reaches the
network.
"""

import json
import os
import shutil

import pytest
from conftest import make_reference
from conftest import tiny_backbone

import keras_ast
from keras_ast import ASTAudioConverter
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli
from keras_ast.presets import upload


class FakeApi:
    """Records `HfApi` calls; `remote_files` are what the repo holds."""

    calls = []
    remote_files = set()

    def create_repo(self, repo_id, exist_ok=False, **kwargs):
        self.calls.append(("create_repo", repo_id, exist_ok))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", repo_id,
                           sorted(os.listdir(folder_path))))

    def file_exists(self, repo_id, filename, **kwargs):
        return filename in self.remote_files

    def upload_file(self, *, path_or_fileobj, path_in_repo, repo_id,
                    **kwargs):
        self.calls.append(("upload_file", repo_id, path_in_repo,
                           path_or_fileobj.decode("utf-8")))


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(FakeApi, "calls", [])
    monkeypatch.setattr(FakeApi, "remote_files", set())
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """A tiny classifier's preset directory, as `save_to_preset` writes it."""
    backbone = tiny_backbone()
    classifier = ASTClassifier(
        backbone, num_classes=3, preprocessor=ASTAudioConverter(max_length=64),
        labels=["yes", "no", "maybe"],
    )
    path = str(tmp_path_factory.mktemp("tiny") / "preset")
    classifier.save_to_preset(path)
    return path


def test_upload_creates_repo_and_uploads_folder(hub, preset):
    before = sorted(os.listdir(preset))
    assert keras_ast.upload_preset("hf://someone/ast-tiny", preset) == (
        "hf://someone/ast-tiny")
    assert hub.calls[0] == ("create_repo", "someone/ast-tiny", True)
    assert hub.calls[1] == ("upload_folder", "someone/ast-tiny", before)
    assert "model.weights.h5" in before and "config.json" in before
    # The model card goes up beside the folder, which stays untouched.
    kind, repo_id, name, card = hub.calls[2]
    assert (kind, repo_id, name) == ("upload_file", "someone/ast-tiny",
                                     "README.md")
    assert card.startswith("---\nlibrary_name: keras\n")
    assert "pipeline_tag: audio-classification" in card
    assert 'ASTClassifier.from_preset("hf://someone/ast-tiny")' in card
    assert "yes, no, maybe" in card
    assert len(hub.calls) == 3
    assert sorted(os.listdir(preset)) == before


def test_an_existing_model_card_is_kept(hub, preset, tmp_path):
    hub.remote_files.add("README.md")
    upload.upload_preset("hf://someone/ast-tiny", preset)
    assert [call[0] for call in hub.calls] == ["create_repo",
                                               "upload_folder"]
    hub.calls.clear()
    hub.remote_files.clear()
    with_card = str(tmp_path / "with_card")
    shutil.copytree(preset, with_card)
    with open(os.path.join(with_card, "README.md"), "w") as f:
        f.write("my own card\n")
    upload.upload_preset("hf://someone/ast-tiny", with_card)
    assert [call[0] for call in hub.calls] == ["create_repo",
                                               "upload_folder"]
    assert "README.md" in hub.calls[1][2]


@pytest.mark.parametrize("uri, message", [
    ("kaggle://someone/ast/keras/tiny", "only the Hugging Face Hub"),
    ("someone/ast-tiny", "only the Hugging Face Hub"),
    ("hf://ast-tiny", "Malformed"),
    ("hf://someone/ast/tiny", "Malformed"),
    ("hf://someone/-ast", "Malformed"),
    ("hf://someone/ast--tiny", "Malformed"),
])
def test_bad_uris_are_refused(hub, preset, uri, message):
    with pytest.raises(ValueError, match=message):
        upload.upload_preset(uri, preset)
    assert hub.calls == []


def test_kaggle_message_names_the_scheme(hub, preset):
    with pytest.raises(ValueError, match="kaggle:// is not supported"):
        upload.upload_preset("kaggle://someone/ast/keras/tiny", preset)


def test_only_keras_ast_presets_are_uploaded(hub, tmp_path):
    hf_format = str(tmp_path / "hf_format")
    make_reference("speech_commands", hf_format)
    with pytest.raises(ValueError, match="hf_format.*not a keras_ast preset"):
        upload.upload_preset("hf://someone/ast", hf_format)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty.*has no config.json"):
        upload.upload_preset("hf://someone/ast", empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        upload.upload_preset("hf://someone/ast", tmp_path / "missing")
    assert hub.calls == []


def test_cli_upload(hub, preset, tmp_path, capsys):
    assert cli.main(["upload", "hf://someone/ast-tiny", preset]) == 0
    assert f"{preset} -> hf://someone/ast-tiny" in capsys.readouterr().out
    assert hub.calls[0] == ("create_repo", "someone/ast-tiny", True)
    hub.calls.clear()
    assert cli.main(["upload", "kaggle://someone/x/keras/y", preset]) == 1
    assert "only the Hugging Face Hub" in capsys.readouterr().err
    assert cli.main(["upload", "hf://someone/x", str(tmp_path)]) == 1
    assert "not a keras_ast preset" in capsys.readouterr().err
    assert hub.calls == []


def test_convert_uploads_through_upload_preset(hub, reference, tmp_path,
                                               monkeypatch, capsys):
    uploads = []
    real = upload.upload_preset

    def recording(uri, preset_dir):
        uploads.append((uri, preset_dir))
        return real(uri, preset_dir)

    monkeypatch.setattr(upload, "upload_preset", recording)
    directory = reference("speech_commands")[0]
    output = str(tmp_path / "preset")
    assert cli.main(["convert", "--source", directory, "--output", output,
                     "--upload", "hf://someone/ast-sc"]) == 0
    assert uploads == [("hf://someone/ast-sc", output)]
    assert "uploaded to hf://someone/ast-sc" in capsys.readouterr().out
    assert hub.calls[0] == ("create_repo", "someone/ast-sc", True)
    assert hub.calls[1][:2] == ("upload_folder", "someone/ast-sc")
    assert "model.weights.h5" in hub.calls[1][2]
    card = hub.calls[2][3]
    assert "- source: " + directory in card
    assert json.load(open(os.path.join(output, "config.json")))[
        "format"] == "keras_ast"


def test_convert_refuses_a_bad_upload_target_first(hub, reference, tmp_path,
                                                   capsys):
    output = str(tmp_path / "preset")
    assert cli.main(["convert", "--source", reference("speech_commands")[0],
                     "--output", output,
                     "--upload", "kaggle://someone/ast/keras/sc"]) == 1
    assert "only the Hugging Face Hub" in capsys.readouterr().err
    assert not os.path.exists(output)
    assert hub.calls == []
