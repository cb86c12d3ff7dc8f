"""The Colab tutorials: each `tutorials/NN_name.ipynb` is made from its
percent-format source `tutorials/NN_name.py` and runs top to bottom.

The notebook must hold its source's cells plus the Colab badge and install
cell that `tools/build_notebooks.py` adds, and outputs only where they come
from a real run. The large tests execute each notebook with nbclient, the
cells a Colab user runs, in a fresh folder, under the test process's
KERAS_BACKEND, with no network: `KERAS_AST_TUTORIAL_PRESET` points the
pretrained-model notebooks at a small random-weight preset built here, and
the Hub is offline. A notebook that raises, or runs past its budget, fails.
"""

import pathlib
import re
import shutil
import time

import keras
import nbformat
import pytest
from conftest import TUTORIALS
from conftest import load_tool
from conftest import require_speech_synthesis

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier

build_notebooks = load_tool("build_notebooks")
BACKEND = keras.config.backend()
# name: (backends it runs on, budget in seconds on a shared 2-core CPU).
# The fine-tuning notebook runs on every backend; the others on one (their
# cells are backend-agnostic); the exports need TensorFlow.
RUNS = {
    "01_classify_sounds": (("jax",), 120),
    "02_long_recordings": (("jax",), 120),
    "03_fine_tune": (("jax", "tensorflow", "torch"), 240),
    "04_export_and_serve": (("tensorflow",), 240),
    "05_port_a_checkpoint": (("jax",), 150),
    "06_pretrain": (("jax",), 360),
}
# Committed with the outputs of a real run (`build_notebooks.py --execute`).
# The others are committed without outputs: the suite runs them on a
# random-weight model, and no output may pretend to come from a pretrained
# one.
WITH_OUTPUTS = ("03_fine_tune",)
# The CI run trains fewer epochs than the committed outputs show.
CI_EPOCHS = "2"
LABELS = ["Speech", "Music", "Dog", "Vehicle", "Silence", "Beep"]
NAMES = build_notebooks.names()


def read(name):
    return nbformat.read(build_notebooks.path_of(name), as_version=4)


def test_every_notebook_has_a_source_and_a_run():
    notebooks = sorted(path.stem for path in
                       pathlib.Path(TUTORIALS).glob("*.ipynb"))
    assert notebooks == NAMES, "a notebook without a source, or the reverse"
    assert sorted(RUNS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_matches_its_source(name):
    """The notebook is its source's cells, after the badge (top of the
    first cell) and the Colab-only install cell are taken out."""
    notebook = read(name)
    source = build_notebooks.source_cells(name)
    cells = [(cell.cell_type, cell.source) for cell in notebook.cells]
    badge = build_notebooks.colab_badge(name)
    assert f"/blob/main/tutorials/{name}.ipynb" in badge
    assert cells[0][1].startswith(badge + "\n\n"), "no Colab badge"
    cells[0] = (cells[0][0], cells[0][1][len(badge) + 2:])
    install = [index for index, (kind, text) in enumerate(cells)
               if kind == "code" and "google.colab" in text
               and "!pip install" in text]
    assert len(install) == 1, "one Colab install cell"
    assert build_notebooks.repository_url() in cells[install[0]][1]
    del cells[install[0]]
    assert cells == [(cell.cell_type, cell.source) for cell in source], (
        f"rerun python tools/build_notebooks.py ({name} is out of date)")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source
    assert 'os.environ["KERAS_BACKEND"]' in code[1].source


@pytest.mark.parametrize("name", NAMES)
def test_outputs_only_from_a_real_run(name):
    code = [c for c in read(name).cells if c.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    if name not in WITH_OUTPUTS:
        assert outputs == []
        assert all(cell.execution_count is None for cell in code)
        return
    # One run, top to bottom, that raised nothing.
    assert [cell.execution_count for cell in code] == list(
        range(1, len(code) + 1))
    assert any("image/png" in output.get("data", {})
               for output in outputs), "no plot in the outputs"
    assert not any(output.output_type == "error" for output in outputs)
    noise = reader_noise("".join(output.get("text", "")
                                 for output in outputs))
    assert not noise, f"{name}'s outputs show {noise}"


def test_shell_lines_come_back_from_comments():
    """`# !keras-ast ...` in a source is `!keras-ast ...` in the notebook."""
    cells = build_notebooks.source_cells("03_fine_tune")
    shell = [line for cell in cells if cell.cell_type == "code"
             for line in cell.source.splitlines() if line.startswith("!")]
    assert "!keras-ast make-shards {AUDIO}/train shards/train " \
        "--no-progress" in shell


@pytest.fixture
def one_tutorial(tmp_path, monkeypatch):
    """`tutorials/` holding only 01_classify_sounds, in `tmp_path`."""
    name = "01_classify_sounds"
    for suffix in (".py", ".ipynb"):
        shutil.copy(pathlib.Path(TUTORIALS) / f"{name}{suffix}", tmp_path)
    monkeypatch.setattr(build_notebooks, "TUTORIALS", str(tmp_path))
    return name, tmp_path / f"{name}.py"


def test_check_names_a_stale_notebook(one_tutorial, capsys):
    name, source = one_tutorial
    assert build_notebooks.main(["--check"]) == 0
    source.write_text(source.read_text() + "\n# %%\nprint(1)\n")
    assert build_notebooks.main(["--check"]) == 1
    assert f"{name}.ipynb does not match" in capsys.readouterr().err
    assert build_notebooks.main([]) == 0
    assert build_notebooks.main(["--check"]) == 0
    assert read(name).cells[-1].source == "print(1)"


def test_rebuilding_keeps_outputs_while_the_code_is_unchanged(
        one_tutorial):
    name, source = one_tutorial
    notebook = read(name)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code, 1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", text=f"{count}\n")]
    nbformat.write(notebook, build_notebooks.path_of(name))
    text = source.read_text()
    first_markdown = "# %% [markdown]\n"
    source.write_text(text.replace(
        first_markdown, first_markdown + "# A new line of text.\n#\n", 1))
    assert build_notebooks.write(name) == "written"
    kept = [cell for cell in read(name).cells if cell.cell_type == "code"]
    assert [cell.outputs[0].text for cell in kept] == [
        f"{count}\n" for count in range(1, len(code) + 1)]
    source.write_text(source.read_text() + "\n# %%\nprint(1)\n")
    assert build_notebooks.write(name) == "outputs dropped"
    assert not any(cell.outputs for cell in read(name).cells
                   if cell.cell_type == "code")


# What a reader of a notebook's outputs should never see: the C++ log
# lines of a library (glog/absl: `I0000 00:00:...`), the warnings of
# TensorFlow's Python logger, Python warnings with their source line, and
# the folders of the machine that ran it.
NOISE = {
    "a C++ log line": re.compile(r"^[IWEF]\d{4} \d\d:\d\d:", re.M),
    "absl's log banner": re.compile(r"before absl::InitializeLog"),
    "a TensorFlow warning": re.compile(r"^WARNING:tensorflow:", re.M),
    "a Python warning": re.compile(r"\w+Warning: "),
    "a machine's folder": re.compile(r"(/tmp/|/home/|/work/|/root/|\.venv/)"),
}


def reader_noise(text):
    """The kinds of `NOISE` in `text`, with the first line of each."""
    found = []
    for kind, pattern in NOISE.items():
        match = pattern.search(text)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            found.append(f"{kind}: {text[start:end if end >= 0 else None]!r}")
    return found


def test_reader_noise_finds_each_kind():
    assert reader_noise("accuracy 0.92\nshards/test: 72 clips\n") == []
    for text in ("I0000 00:00:1795787409.053205   10851 port.cc:153] x",
                 "WARNING: All log messages before absl::InitializeLog()",
                 "WARNING:tensorflow:AutoGraph could not transform <f>",
                 "epoch_iterator.py:164: UserWarning: Your input ran out",
                 "/tmp/tmp_wsh049o/shards/test: 72 clips"):
        assert len(reader_noise("ok\n" + text + "\nok")) == 1, text


@pytest.fixture(scope="module")
def random_preset(tmp_path_factory):
    """A tiny multi-label preset with 5 s inputs (notebook 01's clip fits),
    random weights."""
    directory = str(tmp_path_factory.mktemp("tutorial_preset") / "preset")
    keras.utils.set_random_seed(0)
    backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=500,
                           frequency_stride=10, time_stride=10)
    ASTClassifier(backbone, num_classes=len(LABELS),
                  preprocessor=ASTAudioConverter(max_length=500),
                  labels=LABELS, multi_label=True).save_to_preset(directory)
    return directory


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(RUNS))
def test_notebook_runs(name, random_preset, tmp_path, monkeypatch):
    backends, budget = RUNS[name]
    if BACKEND not in backends:
        pytest.skip(f"{name} runs under KERAS_BACKEND={'/'.join(backends)}")
    require_speech_synthesis()
    # Never the Hub: no token, no target repository, offline.
    for variable in ("HF_TOKEN", "KERAS_AST_TUTORIAL_HUB_REPO",
                     "KERAS_AST_TUTORIAL_PTH"):
        monkeypatch.delenv(variable, raising=False)
    # JAX, imported by this process, set TF_CPP_MIN_LOG_LEVEL=1 here; a
    # reader's kernel starts without it, `import_tensorflow` then sets 3,
    # and the `!keras-ast ...` commands inherit it (at 1 a command that
    # trains would show TensorFlow's cuInit error on a machine without a
    # GPU).
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    notebook = read(name)
    start = time.monotonic()
    build_notebooks.execute(notebook, str(tmp_path), timeout=budget, env={
        "KERAS_BACKEND": BACKEND,
        "KERAS_AST_TUTORIAL_PRESET": random_preset,
        "KERAS_AST_TUTORIAL_EPOCHS": CI_EPOCHS,
        "HF_HUB_OFFLINE": "1",
    })
    elapsed = time.monotonic() - start
    print(f"{name} ran in {elapsed:.0f} s under {BACKEND}")
    assert elapsed < budget, f"{name} took {elapsed:.0f} s (budget {budget})"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    # Shell cells (`!keras-ast ...`) do not raise on failure (the cells
    # after them read what they write); a traceback they print fails.
    text = "".join(output.get("text", "") for cell in code
                   for output in cell.outputs)
    assert "Traceback" not in text, text[-3000:]
    # tmp_path shows in the runs' outputs; the SavedModel export logs
    # a TensorFlow warning while saving the label table.
    noise = [kind for kind in reader_noise(text)
             if not kind.startswith(("a machine's folder",
                                     "a TensorFlow warning"))]
    assert not noise, f"{name} shows {noise}"
