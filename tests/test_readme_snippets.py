"""The README's deployment snippets, run as written against small exports.

A format test, so it runs on the TensorFlow backend only (the backend that
exports all three formats); each snippet runs in a fresh interpreter that
imports neither Keras nor keras_ast.
"""

import os
import re
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

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
LABELS = ["yes", "no", "up"]

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="a format test: TensorFlow exports every format")


def snippet(name):
    text = open(README, encoding="utf-8").read()
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```",
                      text, re.S)
    assert found, f"README has no {name} snippet"
    return found.group(1)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("deployed")
    keras.utils.set_random_seed(3)
    backbone = ASTBackbone(hidden_dim=32, num_layers=2, num_heads=4,
                           intermediate_dim=64, max_length=100)
    classifier = ASTClassifier(backbone, num_classes=3, labels=LABELS,
                               preprocessor=ASTAudioConverter(max_length=100))
    head = classifier.head_dense
    head.kernel.assign(np.random.default_rng(0).normal(
        0, 0.5, head.kernel.shape).astype("float32"))
    preset = str(root / "preset")
    classifier.save_to_preset(preset)
    # The exports go through the command line, as the README shows.
    for fmt, target in (("tf_saved_model", "models/ast"),
                        ("onnx", "ast.onnx"), ("litert", "ast.tflite")):
        extra = ["--serving-version", "1"] if fmt == "tf_saved_model" else []
        assert cli.main(["export", "--preset", preset, "--format", fmt,
                         str(root / target)] + extra) == 0
    clip = (np.random.default_rng(1).standard_normal(12000) * 0.1).astype(
        "float32")
    soundfile.write(root / "clip.wav", clip, 16000, subtype="PCM_16")
    decoded, _ = soundfile.read(root / "clip.wav", dtype="float32")
    scores = classifier.predict_scores(decoded[None], verbose=0)[0]
    return root, LABELS[int(np.argmax(scores))], int(np.argmax(scores))


@pytest.mark.parametrize("name", ["saved_model", "onnx", "litert"])
def test_readme_snippet_runs(deployed, name):
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
