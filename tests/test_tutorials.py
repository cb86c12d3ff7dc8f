"""The Colab tutorials (`tutorials/*.ipynb`) run top to bottom.

Each notebook is executed with nbclient, the cells a Colab user runs, in a
fresh folder, under the test process's KERAS_BACKEND, with no network:
`KERAS_AST_TUTORIAL_PRESET` points the pretrained-model notebooks at a
small random-weight preset built here, and the Hub is offline. A notebook
that raises, or runs past its budget, fails. The notebooks must also be
what `tools/make_notebooks.py` writes: outputs only where they are real.
"""

import re
import time

import keras
import nbformat
import pytest
from conftest import load_tool
from conftest import require_speech_synthesis

from keras_ast import ASTAudioConverter
from keras_ast import ASTBackbone
from keras_ast import ASTClassifier

make_notebooks = load_tool("make_notebooks")
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
}
# The CI run trains fewer epochs than the committed outputs show.
CI_EPOCHS = "2"
LABELS = ["Speech", "Music", "Dog", "Vehicle", "Silence", "Beep"]


def test_every_notebook_has_a_run():
    assert sorted(RUNS) == sorted(make_notebooks.NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(make_notebooks.NOTEBOOKS))
def test_notebook_is_generated(name):
    """The file holds the generator's cells: badge first, outputs only
    where they come from a real run."""
    notebook = nbformat.read(make_notebooks.path_of(name), as_version=4)
    expected = make_notebooks.build(name)
    assert [(c.cell_type, c.source) for c in notebook.cells] == [
        (c.cell_type, c.source) for c in expected.cells
    ], f"rerun python tools/make_notebooks.py ({name} is out of date)"
    first = notebook.cells[0].source
    assert first.startswith(make_notebooks.colab_badge(name))
    assert f"/blob/main/tutorials/{name}.ipynb" in first
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source
    assert 'os.environ["KERAS_BACKEND"]' in code[1].source
    outputs = [output for cell in code for output in cell.outputs]
    if name in make_notebooks.WITH_OUTPUTS:
        assert all(cell.execution_count for cell in code)
        assert any("image/png" in output.get("data", {})
                   for output in outputs), "no plot in the outputs"
        assert not any(output.output_type == "error" for output in outputs)
        noise = reader_noise("".join(output.get("text", "")
                                     for output in outputs))
        assert not noise, f"{name}'s outputs show {noise}"
    else:
        assert outputs == []
        assert all(cell.execution_count is None for cell in code)


# What a reader of a notebook's outputs should never see: the C++ log
# lines of a library (glog/absl: `I0000 00:00:...`), Python warnings with
# their source line, and the folders of the machine that ran it.
NOISE = {
    "a C++ log line": re.compile(r"^[IWEF]\d{4} \d\d:\d\d:", re.M),
    "absl's log banner": re.compile(r"before absl::InitializeLog"),
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
    notebook = nbformat.read(make_notebooks.path_of(name), as_version=4)
    start = time.monotonic()
    make_notebooks.execute(notebook, str(tmp_path), timeout=budget, env={
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
    noise = [kind for kind in reader_noise(text)
             if not kind.startswith("a machine's folder")]  # tmp_path runs
    assert not noise, f"{name} shows {noise}"
