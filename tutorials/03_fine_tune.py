# %% [markdown]
# # Train a classifier on your own sounds
#
# From folders of audio files (one folder per class) to a trained model:
# `keras-ast make-shards` packs the files into shards, `train` fits an AST on
# them, `evaluate` measures it on held-out files and draws the confusion
# matrix, and the trained preset classifies new files. The data here is a small
# spoken-keyword set made by espeak-ng (4 words, many voices), so the notebook
# runs anywhere, offline, in a few minutes on a CPU; point `AUDIO` at your own
# folders to train on your sounds.

# %% [markdown] colab_install="data,plot"
# Install keras_ast with its data and plot extras, espeak-ng and sox, on Colab
# only.

# %% [markdown]
# Pick the backend.

# %%
import os

# "jax", "tensorflow" or "torch": set before Keras is imported.
os.environ["KERAS_BACKEND"] = os.environ.get("KERAS_BACKEND", "jax")

# Keras' saving starts TensorFlow on any backend: start it now, without
# its C++ log lines among the outputs.
from keras_ast import import_tensorflow

import_tensorflow()

# %% [markdown]
# The number of training epochs (the committed outputs are from the default;
# the tests run fewer).

# %%
EPOCHS = int(os.environ.get("KERAS_AST_TUTORIAL_EPOCHS", "20"))
print(f"EPOCHS = {EPOCHS}")

# %% [markdown]
# ## 1. Folders of audio
#
# `make-shards` reads a folder with one sub-folder per class:
#
# ```text
# keywords/train/yes/clip_001.wav
# keywords/train/no/...
# keywords/validation/yes/...
# keywords/test/yes/...
# ```
#
# To use your own sounds, lay them out like this (any format soundfile reads,
# any rate) and set `AUDIO` to the top folder; skip the next cell. Here
# `make_keyword_dataset` synthesises the words, each voice in one split only,
# so the test voices are unheard.

# %%
from keras_ast.datasets import make_keyword_dataset

AUDIO = "keywords"
WORDS = ["yes", "no", "up", "down"]
VOICES = {"train": ["en", "en-us", "en+m3", "en+f2", "en-us+m5", "en+f4"],
          "validation": ["en+m7", "en-us+f4"],
          "test": ["en-gb-x-rp", "en-us+f3", "en+m4"]}
# Every word by every voice at 3 speeds and 2 pitches, at a random place
# in 1 s, over white noise 20 to 40 dB below the speech.
counts = make_keyword_dataset(AUDIO, words=WORDS, voices=VOICES,
                              speeds=[120, 160, 200], pitches=[35, 65],
                              snr_db=(20.0, 40.0))
for split, count in counts.items():
    print(f"{AUDIO}/{split}: {count} files")

# %% [markdown]
# ## 2. Shards
#
# `keras-ast make-shards` decodes every file once (mono, 16 kHz), stores the
# audio losslessly in TFRecord shards, and writes `dataset.json`: labels,
# counts, checksums, and every file it skipped and why.

# %%
# !keras-ast make-shards {AUDIO}/train shards/train --no-progress
# !keras-ast make-shards {AUDIO}/validation shards/validation --no-progress
# !keras-ast make-shards {AUDIO}/test shards/test --no-progress
# !cat shards/train/dataset.json | head -c 400

# %% [markdown]
# ## 3. Train
#
# A small AST from scratch (3 layers, 96 wide: 1 s inputs of 100 frames). To
# fine-tune pretrained weights instead, pass a preset such as
# `ast_speech_commands_v2` (and `max_length=100`) to `train`: they learn faster
# and better, but download 350 MB. `train` sizes the head from the shards'
# labels.

# %%
import keras_ast

keras_ast.ASTBackbone(
    hidden_dim=96, num_layers=3, num_heads=4, intermediate_dim=192,
    max_length=100, frequency_stride=16, time_stride=10,
).save_to_preset("scratch")

# %% [markdown]
# `keras_ast.train` is `keras-ast train`: from scratch on a few clips a larger
# rate and no augmentation learn fastest. It writes a checkpoint and
# `metrics.json` every epoch, the best epoch's model in
# `runs/keywords/best_preset` and the last one in `runs/keywords/preset`. The
# same from a shell:
#
# ```bash
# keras-ast train --preset scratch --train shards/train \
#     --validation shards/validation --output runs/keywords \
#     --epochs 20 --learning-rate 1e-3 --no-mixup --no-spec-augment
# ```

# %%
import time

start = time.time()
classifier = keras_ast.train("scratch", "shards/train", "runs/keywords",
                             validation="shards/validation",
                             epochs=EPOCHS, learning_rate=1e-3,
                             mixup=False, spec_augment=False,
                             overwrite=True, verbose=0)
print(f"Trained {EPOCHS} epochs in {time.time() - start:.0f} s; "
      f"labels {classifier.labels}")

# %% [markdown]
# The learning curves, from `metrics.json`.

# %%
import json
import matplotlib.pyplot as plt

history = json.load(open("runs/keywords/metrics.json"))
epochs = [h["epoch"] for h in history]
figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3))
for key in ("loss", "val_loss"):
    loss_ax.plot(epochs, [h[key] for h in history], label=key)
for key in ("accuracy", "val_accuracy"):
    acc_ax.plot(epochs, [h[key] for h in history], label=key)
for ax in (loss_ax, acc_ax):
    ax.set_xlabel("epoch")
    ax.legend()
plt.show()

# %% [markdown]
# ## 4. Evaluate
#
# `evaluate` runs the best model over the test shards (voices it never heard),
# prints accuracy, F1 and per-word figures, and writes `evaluation.json` and
# the confusion matrix: rows are the true words, columns the predicted ones.
# The same from a shell:
#
# ```bash
# keras-ast evaluate --preset runs/keywords/best_preset --data shards/test \
#     --output runs/keywords/test
# ```

# %%
report = keras_ast.evaluate("runs/keywords/best_preset", "shards/test",
                            output="runs/keywords/test")
print(keras_ast.format_report(report))

# %%
from IPython.display import Image

Image("runs/keywords/test/confusion_matrix.png")

# %% [markdown]
# ## 5. Classify new files
#
# The trained preset loads like any other (`from_preset`) and classifies files
# of any length and rate: here, words by an unheard voice at 44.1 kHz.

# %%
import soundfile
from keras_ast.datasets import speak

classifier = keras_ast.ASTClassifier.from_preset("runs/keywords/best_preset")
for word in WORDS:
    audio = speak(word, voice="en-us+m3", speed=150)
    soundfile.write(f"new_{word}.wav",
                    keras_ast.resample(audio, 16000, 44100), 44100)
results = classifier.classify([f"new_{word}.wav" for word in WORDS], top_k=2)
for word, result in zip(WORDS, results):
    print(f"new_{word}.wav:", ", ".join(f"{label} {score:.2f}"
                                        for label, score in result))

# %% [markdown]
# The same from a shell: `keras-ast classify new_yes.wav --preset
# runs/keywords/best_preset`. `04_export_and_serve` turns the preset into a
# SavedModel, ONNX and LiteRT file.
