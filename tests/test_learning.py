"""Learning: a small AST trained from scratch with the `train` defaults.

The keyword set of `keras_ast.datasets.make_keyword_dataset` (10 words,
espeak-ng voices) is sharded, a random-weight backbone is trained by
`keras_ast.training.train.train` with its default recipe (AdamW, warm-up and
cosine decay, feature noise and time roll, mixup), and the result must
recognise the words spoken by voices it never heard: the defaults reached
0.94-0.95 on JAX with two seeds (README, "Data sets and training"); the
bar leaves a margin for seeds and backends. The slowest test of the suite
(a few minutes per backend on 2 CPU cores).
"""

import keras
import numpy as np
import pytest
from conftest import require_speech_synthesis

from keras_ast import ASTBackbone
from keras_ast import ASTClassifier
from keras_ast.data import pipelines
from keras_ast.data.shards import make_shards
from keras_ast.datasets import spoken_keywords
from keras_ast.training.train import train

# Minutes per backend on 2 CPU cores: deselect with `-m "not slow"`.
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def keyword_shards(tmp_path_factory):
    require_speech_synthesis()
    root = tmp_path_factory.mktemp("keywords")
    counts = spoken_keywords.make_keyword_dataset(str(root / "audio"),
                                                  workers=4)
    assert counts == {"train": 1200, "validation": 240, "test": 360}
    shards = {}
    for split in ("train", "test"):
        shards[split] = str(root / split)
        make_shards(str(root / "audio" / split), shards[split],
                    format="tfrecord", num_workers=1, progress=False)
    return root, shards, spoken_keywords.WORDS


def accuracy(classifier, shards):
    correct = total = 0
    for waveforms, labels in pipelines.tf_dataset(shards, 60):
        logits = classifier.predict_on_batch(np.asarray(waveforms))
        predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
        correct += int(np.sum(predicted == np.asarray(labels)))
        total += len(labels)
    return correct / total


def test_small_ast_learns_keywords_from_scratch(keyword_shards):
    root, shards, words = keyword_shards
    preset = str(root / "scratch")
    ASTBackbone(hidden_dim=96, num_layers=3, num_heads=4,
                intermediate_dim=384, max_length=100, frequency_stride=16,
                time_stride=10).save_to_preset(preset)
    classifier = train(preset, shards["train"], str(root / "run"),
                       epochs=30, verbose=0)
    assert classifier.labels == sorted(words)
    # Chance is 0.1; the test voices are unheard accents and timbres.
    restored = ASTClassifier.from_preset(str(root / "run" / "preset"))
    score = accuracy(restored, shards["test"])
    print(f"accuracy on unheard voices: {score:.3f}")
    assert score >= 0.85, f"accuracy on unheard voices {score:.3f}"
