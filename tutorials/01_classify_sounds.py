# %% [markdown]
# # Classify sounds with a pretrained AST
#
# The Audio Spectrogram Transformer (AST) fine-tuned on AudioSet recognises 527
# everyday sound classes (speech, music, dogs, engines, ...) from raw 16 kHz
# audio. This notebook loads a pretrained preset, classifies a file with
# `classify` (top-k classes with sigmoid scores: AudioSet's classes are
# independent, so several can be present at once), and draws what the model
# sees (the log-mel spectrogram) and where its [CLS] token looks (the last
# layer's attention). It runs on a CPU runtime in a few minutes; a GPU makes it
# faster.

# %% [markdown] colab_install="plot,audio"
# Install keras_ast (and espeak-ng, sox for the test speech) on Colab;
# elsewhere this cell does nothing.

# %% [markdown]
# Pick the Keras backend before Keras is imported: JAX, TensorFlow and PyTorch
# give the same scores.

# %%
import os

# "jax", "tensorflow" or "torch": set before Keras is imported.
os.environ["KERAS_BACKEND"] = os.environ.get("KERAS_BACKEND", "jax")

# Keras' saving starts TensorFlow on any backend: start it now, without
# its C++ log lines among the outputs.
from keras_ast import import_tensorflow

import_tensorflow()

# %% [markdown]
# Load the pretrained model: `ast_audioset_10_10_0.4593` is the authors' best
# single AudioSet model (0.459 mAP, 87M parameters, 10.24 s inputs). The
# spectrogram is computed inside the model, so it takes waveforms.

# %%
# A built-in preset name (downloaded from the Hugging Face Hub once), an
# owner/repo id, or a local preset folder. Tests point this at a small
# local model with random weights, so their scores mean nothing.
PRESET = os.environ.get("KERAS_AST_TUTORIAL_PRESET",
                        "ast_audioset_10_10_0.4593")

import keras_ast

classifier = keras_ast.ASTClassifier.from_preset(PRESET)
print(f"{classifier.count_params():,} parameters, "
      f"{len(classifier.labels)} classes, "
      f"multi_label={classifier.multi_label}")

# %% [markdown]
# Make a sound file to classify: a sentence spoken by espeak-ng over a little
# background noise, written as a WAV file. Replace `path` with any file of your
# own (WAV, FLAC, OGG, MP3; any rate, mono or stereo).

# %%
import numpy as np
import soundfile
from keras_ast.datasets import speak

speech = speak(
    "Hello! This is a short test of the audio spectrogram transformer.")
rng = np.random.default_rng(0)
audio = np.concatenate([np.zeros(4000, "float32"), speech])
audio += 0.003 * rng.standard_normal(len(audio)).astype("float32")
path = "speech.wav"
soundfile.write(path, audio, 16000)
print(f"{path}: {len(audio) / 16000:.2f} s")

# %% [markdown]
# `classify` decodes the file (mixed down to mono, resampled to 16 kHz) and
# returns `(label, score)` pairs, best first. Scores are sigmoids: each says
# how sure the model is that this class is present, independently of the
# others.

# %%
for label, score in classifier.classify(path, top_k=5):
    print(f"{score:6.3f}  {label}")

# %% [markdown]
# `threshold=` keeps every class above a score instead of a fixed number, and a
# list of inputs (paths or arrays) gives one list per input.

# %%
waveform = keras_ast.load_audio(path)   # mono float32 at 16 kHz
noise = 0.1 * rng.standard_normal(16000 * 3).astype("float32")
for name, result in zip(["speech", "noise"], classifier.classify(
        [waveform, noise], sampling_rate=16000, top_k=3)):
    print(name, [(label, round(score, 3)) for label, score in result])

# %% [markdown]
# What the model sees: the Kaldi-style log-mel filter banks its converter
# computes (128 mel bins every 10 ms).

# %%
from keras_ast import plot

plot.spectrogram(waveform, converter=classifier.preprocessor,
                 title="speech.wav")

# %% [markdown]
# Where it looks: the last layer's [CLS] attention over the spectrogram
# patches, averaged over heads. Attention on the zero padding past the audio is
# reported in the title.

# %%
plot.attention(classifier, waveform)

# %% [markdown]
# Next: `02_long_recordings` tags recordings longer than one input, and
# `03_fine_tune` trains a model on your own sounds.
