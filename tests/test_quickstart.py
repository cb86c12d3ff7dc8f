"""The README's quick start (`tutorials/quickstart.py`) trains a keyword
spotter that hears the words a user makes.

The script runs as the README's first command runs it (50 epochs, under
the test's backend); its model must then hear each word as espeak-ng says
it with no noise (`espeak-ng -w word.wav WORD`: the default voice over
digital silence), the demo file `down.wav`, and most clips of the voices
it never heard (a model trained on noisy clips only hears every clean
word as "yes").
"""

import os

import numpy as np
import pytest
from conftest import TUTORIALS
from conftest import load_tool
from conftest import require_speech_synthesis

from keras_ast import ASTClassifier

# large: runs the README's first command end to end; slow: it trains
# 50 epochs.
pytestmark = [pytest.mark.large, pytest.mark.slow]


def test_quickstart_hears_clean_and_noisy_words(tmp_path, capsys):
    require_speech_synthesis()
    quickstart = load_tool("quickstart", folder=TUTORIALS)
    quickstart.main(["--output", str(tmp_path)])
    printed = capsys.readouterr().out
    classifier = ASTClassifier.from_preset(str(tmp_path / "preset"))
    assert classifier.labels == quickstart.LABELS

    clean = classifier.predict_scores(quickstart.clean_words())
    heard = [quickstart.LABELS[i] for i in clean.argmax(-1)]
    assert heard == quickstart.WORDS, printed
    silence = classifier.predict_scores(np.zeros((1, 16000), "float32"))
    assert quickstart.LABELS[int(silence.argmax())] == quickstart.SILENCE

    (label, _), = classifier.classify(
        os.path.join(tmp_path, "down.wav"), top_k=1)
    assert label == "down", printed
    test_x, test_y = quickstart.keyword_set(quickstart.TEST_VOICES, seed=1)
    predicted = classifier.predict_scores(test_x).argmax(-1)
    assert np.mean(predicted == test_y) >= 0.85, printed
