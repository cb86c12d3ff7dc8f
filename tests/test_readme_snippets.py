"""Every code block of the README, and the export page's deployment
snippets, run or checked as written.

Each fenced code block of README.md follows a marker comment
`<!-- snippet: NAME -->`, and NAME says how the suite covers it:

- `python`: run in this process, in a folder holding the files it names
  (`dog.wav`, `street.flac`), with the built-in preset name replaced by a
  small random-weight preset saved there;
- `cli`: each `keras-ast` command run through `keras_ast.cli.main` in such
  a folder (also `my_audio/{train,test}/CLASS/`), with the same preset
  replaced and `--epochs N` made `--epochs 1`;
- `ci`, `edit-loop`, `install`, `docs`: commands that set up a machine or
  run the suite, checked against what runs them (`.ci/run`, the quick
  start's test, the markers and extras of pyproject.toml).

The deployment snippets of docs/export.md (`saved_model`, `onnx`,
`litert`) run against small exports in a fresh interpreter that imports
neither Keras nor keras_ast: a format test, on the TensorFlow backend only
(the backend that exports all three formats).
"""

import os
import re
import shlex
import subprocess
import sys

import keras
import numpy as np
import pytest
import soundfile

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.cli import main as cli

ROOT = os.path.join(os.path.dirname(__file__), "..")
README = os.path.join(ROOT, "README.md")
EXPORT_PAGE = os.path.join(ROOT, "docs", "export.md")
LABELS = ["yes", "no", "up"]
PRESET_NAME = "ast_audioset_10_10_0.4593"
MARKERS = ("ci", "edit-loop", "python", "cli", "install", "docs")
MARKED = re.compile(
    r"<!-- snippet: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.S)

tensorflow_only = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="a format test: TensorFlow exports every format")


def read(path):
    with open(path, encoding="utf-8") as file:
        return file.read()


def snippets(path):
    """`{name: (language, code)}` of the marked blocks of a file."""
    found = {}
    for name, language, code in MARKED.findall(read(path)):
        assert name not in found, f"{path}: two {name} snippets"
        found[name] = (language, code)
    return found


def snippet(name, path=EXPORT_PAGE):
    found = snippets(path)
    assert name in found, f"{path} has no {name} snippet"
    return found[name][1]


def tiny_classifier():
    keras.utils.set_random_seed(3)
    backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=100)
    return ASTClassifier(backbone, num_classes=3, labels=LABELS,
                         preprocessor=ASTAudioConverter(max_length=100))


def noise(seconds, rate, seed, channels=1):
    shape = (int(seconds * rate),) + ((channels,) if channels > 1 else ())
    return (np.random.default_rng(seed).standard_normal(shape) * 0.1
            ).astype("float32")


def substituted(code, preset):
    return code.replace(PRESET_NAME, preset)


# --- every block of the README is marked and covered ------------------------


def test_every_readme_block_is_marked():
    text = read(README)
    blocks = re.findall(r"^```(\w*)$", text, re.M)
    # Opening and closing fences alternate; every opening one is marked.
    assert len(blocks) % 2 == 0
    assert len(blocks) // 2 == len(MARKED.findall(text)), (
        "every README code block needs a `<!-- snippet: NAME -->` line "
        "above it")
    assert set(snippets(README)) == set(MARKERS), (
        f"README snippets {sorted(snippets(README))}, the suite covers "
        f"{sorted(MARKERS)}")


def test_readme_ci_commands_are_what_ci_runs():
    code = snippet("ci", README)
    assert code.split() == ["bash", "tools/setup.sh", "&&",
                            ".venv/bin/python", "tutorials/quickstart.py",
                            "bash", "tools/test.sh"]
    ci = read(os.path.join(ROOT, ".ci", "run"))
    assert "bash tools/setup.sh" in ci and "bash tools/test.sh" in ci
    # The quick start itself runs in the suite, as the README types it.
    assert "quickstart.py" in read(
        os.path.join(ROOT, "tests", "test_quickstart.py"))


def test_readme_edit_loop_uses_registered_markers():
    code = snippet("edit-loop", README).strip()
    assert code == 'bash tools/test.sh -m "not large and not slow"'
    pyproject = read(os.path.join(ROOT, "pyproject.toml"))
    for marker in ("large", "slow"):
        assert re.search(rf'"{marker}:', pyproject), marker


def extras():
    pyproject = read(os.path.join(ROOT, "pyproject.toml"))
    table = pyproject.split("[project.optional-dependencies]")[1]
    table = table.split("\n[")[0]
    return set(re.findall(r"^(\w+) = \[", table, re.M))


def test_readme_install_names_real_extras():
    code = snippet("install", README) + snippet("docs", README)
    named = set(re.findall(r"\[(\w+)\]", code))
    assert named and named <= extras(), named - extras()
    # The torch pin is the one tools/setup.sh installs.
    pin = re.search(r"torch==[\d.]+", code).group(0)
    assert pin in read(os.path.join(ROOT, "tools", "setup.sh"))
    prose = read(README).split("## Install")[1].split("## ")[0]
    missing = [name for name in extras() if f"`{name}`" not in prose]
    assert not missing, f"README's install section lacks extras {missing}"


def test_readme_docs_command_serves_this_site():
    assert snippet("docs", README).split() == [
        "pip", "install", "-e", '".[docs]"', "&&", "mkdocs", "serve"]
    assert os.path.exists(os.path.join(ROOT, "mkdocs.yml"))


# --- the Python and command-line blocks run ---------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with a small preset and the audio files the README names."""
    root = tmp_path_factory.mktemp("readme")
    preset = str(root / "tiny_preset")
    tiny_classifier().save_to_preset(preset)
    soundfile.write(root / "dog.wav", noise(1.0, 16000, 1), 16000,
                    subtype="PCM_16")
    # 44.1 kHz stereo: decoded, mixed down and resampled on the way in.
    soundfile.write(root / "street.flac", noise(3.0, 44100, 2, channels=2),
                    44100)
    for split, count in (("train", 4), ("test", 2)):
        for label_index, label in enumerate(("dog", "bird")):
            folder = root / "my_audio" / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                soundfile.write(
                    folder / f"{index}.wav",
                    noise(1.0, 16000, 10 * label_index + index), 16000,
                    subtype="PCM_16")
    return root, preset


def test_readme_python_block_runs(workdir, monkeypatch, capsys):
    root, preset = workdir
    monkeypatch.chdir(root)
    code = substituted(snippet("python", README), preset)
    namespace = {"__name__": "__main__"}
    exec(compile(code, "README.md python block", "exec"), namespace)
    printed = capsys.readouterr().out
    top = eval(printed.splitlines()[0])  # classify's [(label, score), ...]
    assert len(top) == 3 and {label for label, _ in top} <= set(LABELS)
    assert namespace["classifier"].labels == ["dog", "street"]


def commands(code):
    """The `keras-ast` argument lists of a bash block, one per command."""
    code = re.sub(r"\\\n\s*", " ", code)   # continuation lines joined
    found = []
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "keras-ast", f"not a keras-ast command: {line}"
            found.append(words[1:])
    return found


def test_readme_command_line_block_runs(workdir, monkeypatch):
    # In this process, through the same `main` as the `keras-ast` script
    # (tests/test_cli.py runs the script itself): a process per command
    # would start a backend seven times.
    root, preset = workdir
    monkeypatch.chdir(root)
    code = substituted(snippet("cli", README), preset)
    code = re.sub(r"--epochs \d+", "--epochs 1", code)
    argvs = commands(code)
    assert [argv[0] for argv in argvs] == [
        "presets", "classify", "classify", "make-shards", "make-shards",
        "train", "evaluate"]
    for argv in argvs:
        assert cli.main(argv) == 0, argv
    assert (root / "events.csv").read_text().startswith(
        "path,label,onset,offset,score")
    assert (root / "runs" / "mine" / "preset" / "config.json").exists()


# --- the export page's deployment snippets ----------------------------------


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("deployed")
    classifier = tiny_classifier()
    head = classifier.head_dense
    head.kernel.assign(np.random.default_rng(0).normal(
        0, 0.5, head.kernel.shape).astype("float32"))
    preset = str(root / "preset")
    classifier.save_to_preset(preset)
    # The exports go through the command line, as the docs show.
    for fmt, target in (("tf_saved_model", "models/ast"),
                        ("onnx", "ast.onnx"), ("litert", "ast.tflite")):
        extra = ["--serving-version", "1"] if fmt == "tf_saved_model" else []
        assert cli.main(["export", "--preset", preset, "--format", fmt,
                         str(root / target)] + extra) == 0
    soundfile.write(root / "clip.wav", noise(0.75, 16000, 1), 16000,
                    subtype="PCM_16")
    decoded, _ = soundfile.read(root / "clip.wav", dtype="float32")
    scores = classifier.predict_scores(decoded[None], verbose=0)[0]
    return root, LABELS[int(np.argmax(scores))], int(np.argmax(scores))


@tensorflow_only
@pytest.mark.large
@pytest.mark.parametrize("name", ["saved_model", "onnx", "litert"])
def test_export_snippet_runs(deployed, name):
    root, label, index = deployed
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    code = ("import sys\nsys.modules['keras'] = None\n"
            "sys.modules['keras_ast'] = None\n" + snippet(name))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.strip().splitlines()
    if name == "saved_model":
        assert eval(printed[0])[0] == label
        assert printed[1].split()[0] == label
    else:
        assert printed[-1] == f"[{index}]"
