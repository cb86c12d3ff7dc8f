"""The `keras-ast` command line's edges: --version, presets, exit status,
messages, and TensorFlow started only where needed, and quietly."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import soundfile

from keras_ast.cli import main as cli
from keras_ast.data import audio_io
from keras_ast.data.shards import make_shards
from keras_ast.presets.builtin import BUILTIN_PRESETS
from keras_ast.utils.quiet_tensorflow import LOG_LINE
from keras_ast.utils.quiet_tensorflow import filter_log
from keras_ast.version import __version__

RATE = 16000
HEAVY = ("keras", "tensorflow", "jax", "torch")


def run_python(script, backend=None, **env):
    """`python -c script` in a fresh process; `env` None values unset."""
    environ = dict(os.environ)
    if backend:
        environ["KERAS_BACKEND"] = backend
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run([sys.executable, "-c", script], env=environ,
                          capture_output=True, text=True, timeout=300)


def loaded_after(argv):
    """A script running `cli.main(argv)`, then printing which of `HEAVY`
    it imported."""
    return (
        "import sys\n"
        "from keras_ast.cli import main as cli\n"
        "try:\n"
        f"    status = cli.main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    status = exit.code\n"
        "print('STATUS', status)\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )


def write_wav(path, seconds=0.5, seed=0):
    rng = np.random.default_rng(seed)
    soundfile.write(path, (rng.standard_normal(int(seconds * RATE))
                           * 0.1).astype(np.float32), RATE)
    return str(path)


@pytest.fixture
def audio_folder(tmp_path):
    """Two classes of noise, and a 0-byte file in one of them."""
    root = tmp_path / "audio"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            write_wav(root / label / f"{i}.wav", seed=i)
    (root / "dog" / "empty.wav").write_bytes(b"")
    return root


# --- --version and presets ---------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"keras-ast {__version__}"


def test_presets_table(capsys):
    assert cli.main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PRESET", "HUB", "REPOSITORY", "INPUT",
                                "LABELS", "REPORTED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == sorted(BUILTIN_PRESETS)
    for name, preset in BUILTIN_PRESETS.items():
        assert preset["hf_repo"] in rows[name]
        assert f" {preset['num_classes']} " in rows[name]
    # The authors' figures, as they write them.
    assert "10.24 s, 16 kHz" in rows["ast_audioset_10_10_0.450"]
    assert "0.450 mAP (AudioSet)" in rows["ast_audioset_10_10_0.450"]
    assert "0.4593 mAP" in rows["ast_audioset_10_10_0.4593"]
    assert rows["ast_speech_commands_v2"].endswith(
        "98.1% accuracy (Speech Commands V2)")
    assert "1.28 s, 16 kHz" in rows["ast_speech_commands_v2"]


def test_presets_json_loads_no_framework():
    done = run_python(loaded_after(["presets", "--format", "json"]))
    assert done.returncode == 0, done.stderr
    *printed, status, loaded = done.stdout.strip().splitlines()
    assert (status, loaded) == ("STATUS 0", "LOADED []")
    listed = {row.pop("name"): row for row in json.loads("\n".join(printed))}
    assert sorted(listed) == sorted(BUILTIN_PRESETS)
    for name, row in listed.items():
        seconds = row.pop("input_seconds")
        assert seconds == pytest.approx(row["max_length"] / 100)
        assert row.pop("sampling_rate") == RATE
        assert row == BUILTIN_PRESETS[name]


def test_a_reader_that_leaves_is_no_traceback():
    """`keras-ast presets | head -1`: no BrokenPipeError traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_ast.cli.main", "presets", "--format",
         "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command writes
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert "BrokenPipeError" not in error and "Traceback" not in error


# --- exit status and messages ------------------------------------------------


def test_an_empty_file_is_said_to_be_empty(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(audio_io.AudioDecodeError) as raised:
        audio_io.load_audio(tmp_path / "empty.wav")
    assert raised.value.reason == "empty file (0 bytes)"


def test_make_shards_exits_1_when_it_skipped_a_file(audio_folder, tmp_path,
                                                    capsys):
    args = ["make-shards", str(audio_folder), str(tmp_path / "shards"),
            "--format", "arrayrecord", "--num-workers", "0",
            "--no-progress"]
    assert cli.main(args) == 1  # as classify: done, but something skipped
    out = capsys.readouterr().out
    assert "4 examples" in out and "1 skipped" in out
    assert "skipped dog/empty.wav: does not decode: empty file (0 bytes)" in (
        out)
    os.remove(audio_folder / "dog" / "empty.wav")
    assert cli.main(args[:2] + [str(tmp_path / "all")] + args[3:]) == 0
    assert "0 skipped" in capsys.readouterr().out


def test_verify_shards_messages(audio_folder, tmp_path, capsys):
    missing = str(tmp_path / "no_such_folder")
    assert cli.main(["verify-shards", missing]) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"{missing} does not exist.")
    a_file = write_wav(tmp_path / "a.wav")
    assert cli.main(["verify-shards", a_file]) == 1
    assert "is a file, not a shard directory" in capsys.readouterr().err

    directory = str(tmp_path / "shards")
    info = make_shards(str(audio_folder), directory, format="arrayrecord",
                       num_workers=0, progress=False)
    shard = os.path.join(directory, info.shards[0].file)
    with open(shard, "r+b") as f:
        f.truncate(100)
    assert cli.main(["verify-shards", directory]) == 1
    error = capsys.readouterr().err
    # The bad shards were just listed: the remedy is to rebuild, not to
    # run verify-shards again.
    assert "1 of 1 shards are bad" in error
    assert f"keras-ast make-shards {audio_folder} {directory}" in error
    assert "verify-shards" not in error


def test_help_names_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status:" in out and "some input files were skipped" in out
    with pytest.raises(SystemExit):
        cli.main(["make-shards", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status 1 if a file was skipped" in out


# --- TensorFlow: not imported where not needed, and quiet where it is --------


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    from conftest import tiny_backbone

    from keras_ast import ASTAudioConverter
    from keras_ast import ASTClassifier

    directory = tmp_path_factory.mktemp("cli")
    preset = str(directory / "preset")
    ASTClassifier(tiny_backbone(), num_classes=2, labels=["a", "b"],
                  preprocessor=ASTAudioConverter(max_length=64)
                  ).save_to_preset(preset)
    clip = write_wav(directory / "clip.wav", seconds=0.7)
    shards = str(directory / "shards")
    (directory / "audio" / "a").mkdir(parents=True)
    write_wav(directory / "audio" / "a" / "x.wav")
    make_shards(str(directory / "audio"), shards, format="arrayrecord",
                num_workers=0, progress=False)
    return preset, clip, shards


@pytest.mark.large  # another process
def test_commands_without_tensorflow_do_not_import_it(tiny_preset):
    # The child runs this pass's backend, so each non-TensorFlow backend
    # is checked once across the suite's passes.
    backend = keras.config.backend()
    if backend == "tensorflow":
        pytest.skip("the TensorFlow backend imports TensorFlow")
    preset, clip, shards = tiny_preset
    script = (
        "import sys\n"
        "from keras_ast.cli import main as cli\n"
        f"assert cli.main(['verify-shards', {shards!r}]) == 0\n"
        f"assert cli.main(['classify', {clip!r}, '--preset', {preset!r}, "
        "'--no-progress']) == 0\n"
        "print('TENSORFLOW', 'tensorflow' in sys.modules)\n"
    )
    done = run_python(script, backend=backend)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "TENSORFLOW False"


@pytest.mark.large  # another process
def test_tensorflow_starts_quietly(tiny_preset):
    if keras.config.backend() != "tensorflow":
        pytest.skip("checked once, in the TensorFlow pass")
    preset, clip, _ = tiny_preset
    script = (
        "import os, sys\n"
        "from keras_ast.cli import main as cli\n"
        f"status = cli.main(['classify', {clip!r}, '--preset', {preset!r}, "
        "'--no-progress'])\n"
        "print('STATUS', status, 'tensorflow' in sys.modules,\n"
        "      os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
    )
    done = run_python(script, backend="tensorflow",
                      TF_CPP_MIN_LOG_LEVEL=None)
    # TensorFlow ran, and the process' environment is as it was.
    assert done.stdout.strip().splitlines()[-1] == "STATUS 0 True None"
    logged = [line for line in done.stderr.splitlines()
              if LOG_LINE.match(line) or "absl::InitializeLog" in line]
    assert logged == []


def test_filter_log_keeps_what_the_level_asks():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\n"
        "I0000 00:00:1796635425.508020    5382 port.cc:153] oneDNN on\n"
        "W0000 00:00:1796635425.509097    5382 a.cc:31] careful\n"
        "E0000 00:00:1796635449.749148    5888 cuda_platform.cc:52] "
        "failed call to cuInit\n"
        "UserWarning: a Python warning\n"
    )
    lines = text.splitlines(keepends=True)
    assert filter_log(text, 0) == text
    assert filter_log(text, 2) == lines[3] + lines[4]
    assert filter_log(text, 3) == lines[4]


def test_quiet_tensorflow_keeps_the_users_level():
    script = (
        "import os, sys\n"
        "from keras_ast.utils.quiet_tensorflow import quiet_tensorflow\n"
        "hooks = len(sys.meta_path)\n"
        "with quiet_tensorflow():\n"
        "    print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'),\n"
        "      len(sys.meta_path) == hooks)\n"
    )
    done = run_python(script, TF_CPP_MIN_LOG_LEVEL=None)
    assert done.stdout.split() == ["3", "None", "True"], done.stderr
    done = run_python(script, TF_CPP_MIN_LOG_LEVEL="0")
    assert done.stdout.split() == ["0", "0", "True"], done.stderr


# --- classify --token-keep ---------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan", "half"])
def test_token_keep_out_of_range_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["classify", "a.wav", "--preset", "P", "--token-keep",
                  value])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--token-keep" in err
    assert ("above 0 and at most 1" in err) or ("expected a number" in err)


def test_classify_token_keep_is_passed_on(tmp_path, capsys):
    from conftest import tiny_backbone

    from keras_ast import ASTAudioConverter
    from keras_ast import ASTClassifier

    keras.utils.set_random_seed(3)
    # Two layers: tokens are pruned after the first.
    classifier = ASTClassifier(
        tiny_backbone(num_layers=2), num_classes=4, labels=list("abcd"),
        preprocessor=ASTAudioConverter(max_length=64))
    preset = str(tmp_path / "preset")
    classifier.save_to_preset(preset)
    clip = write_wav(tmp_path / "clip.wav", seconds=0.6, seed=2)

    def scores(*flags):
        assert cli.main(["classify", clip, "--preset", preset, "--format",
                         "json", "--top-k", "4", *flags]) == 0
        labels = json.loads(capsys.readouterr().out)[0]["labels"]
        return {item["label"]: item["score"] for item in labels}

    pruned = scores("--token-keep", "0.25")
    expected = dict(classifier.classify(clip, top_k=4, token_keep=0.25))
    assert pruned.keys() == expected.keys()
    for label, score in expected.items():
        assert abs(pruned[label] - score) < 1e-5
    whole = scores()
    assert any(abs(pruned[label] - whole[label]) > 1e-4 for label in whole)


def test_the_command_line_page_names_every_command_and_option(capsys):
    import re

    page = os.path.join(os.path.dirname(__file__), "..", "docs", "cli.md")
    with open(page, encoding="utf-8") as file:
        text = file.read()
    for name in cli.SUBCOMMANDS:
        assert f"\n## {name}\n" in text, f"docs/cli.md: no ## {name}"
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        usage = capsys.readouterr().out.split("\n\n")[0]  # every option
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", usage))
        missing = sorted(o for o in options if f"`{o}" not in text)
        assert not missing, f"docs/cli.md, {name}: {missing}"
