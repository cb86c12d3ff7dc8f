# %% [markdown]
# # Pretrain on your own unlabelled audio
#
# Labels are the scarce part of audio work; recordings without labels are
# not. `keras-ast pretrain` teaches an AST what your audio looks like before
# any label: it hides most of the spectrogram's patches and learns to predict
# them from the rest (masked spectrogram patch modelling, as in SSAST and
# Audio-MAE). The pretrained backbone is an ordinary preset: `keras-ast train`
# puts a classifier head on it and fine-tunes it on the few labelled clips you
# have.
#
# Here the unlabelled audio is espeak-ng reading sentences that never say the
# keywords, in many voices; the labelled set is four spoken keywords by only
# two voices, and the test voices are unheard. Everything runs offline on a
# CPU in a few minutes; point `UNLABELLED` at your own folder to pretrain on
# your audio.

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
# The number of fine-tuning epochs; pretraining runs twice as many, and the
# unlabelled voices read up to 10 sentences each (the tests run fewer).

# %%
EPOCHS = int(os.environ.get("KERAS_AST_TUTORIAL_EPOCHS", "20"))
PRETRAIN_EPOCHS = 2 * EPOCHS
SENTENCES = min(10, EPOCHS)
print(f"EPOCHS = {EPOCHS}, PRETRAIN_EPOCHS = {PRETRAIN_EPOCHS}, "
      f"SENTENCES = {SENTENCES}")

# %% [markdown]
# ## 1. Unlabelled audio
#
# `make-shards --unlabelled` takes a folder of audio files with no class
# sub-folders (any depth, any format soundfile reads, any rate), or a manifest
# without a label column. Files may be longer than a clip: pretraining reads a
# random 1 s of each file every epoch.
#
# To use your own recordings, set `UNLABELLED` to their folder and skip the
# next cell. Here espeak-ng reads sentences made of words that are never the
# keywords, in 12 voices (none of them a keyword voice), at two speeds, over
# white noise 20 to 40 dB below the speech.

# %%
import itertools

import numpy as np
import soundfile
from keras_ast.datasets import speak

UNLABELLED = "unlabelled"
KEYWORDS = ["yes", "no", "up", "down"]
SUBJECTS = ["The old farmer", "A tall sailor", "My sister", "The teacher",
            "Every baker", "Our neighbour", "The small child", "A painter"]
VERBS = ["carried", "painted", "found", "followed", "repaired", "counted"]
OBJECTS = ["a wooden boat", "the green lantern", "seven silver coins",
           "the heavy basket", "a letter from Paris", "three red apples"]
rng = np.random.default_rng(0)
sentences = [" ".join(words) for words in
             itertools.product(SUBJECTS, VERBS, OBJECTS)]
sentences = [sentences[i] for i in rng.permutation(len(sentences))[:SENTENCES]]
assert not set(" ".join(sentences).lower().split()) & set(KEYWORDS)
UNLABELLED_VOICES = ["en+m1", "en+m2", "en+m5", "en+m6", "en+f1", "en+f3",
                     "en+f5", "en-us+m1", "en-us+f1", "en-gb-scotland",
                     "en-029", "en-gb-x-gbclan"]

os.makedirs(UNLABELLED, exist_ok=True)
for voice in UNLABELLED_VOICES:
    for index, sentence in enumerate(sentences):
        for speed in (130, 180):
            audio = speak(sentence, voice=voice, speed=speed)
            peak = np.sqrt(np.mean(np.square(audio)))
            snr = 10 ** (-rng.uniform(20, 40) / 20)
            audio = audio + rng.normal(0, peak * snr, audio.shape)
            soundfile.write(f"{UNLABELLED}/{voice.replace('+', '-')}_"
                            f"{index}_{speed}.wav", audio.astype("float32"),
                            16000)
files = sorted(os.listdir(UNLABELLED))
print(f"{len(files)} files, e.g. {files[0]}: {sentences[0]!r}")

# %% [markdown]
# Pack them into shards: the audio is decoded once (mono, 16 kHz) and stored
# losslessly; `dataset.json` says what was read and what was skipped.

# %%
# !keras-ast make-shards {UNLABELLED} shards/audio --unlabelled --no-progress

# %% [markdown]
# ## 2. Pretrain
#
# The backbone to pretrain: a small AST with random weights (3 layers, 96
# wide; 1 s inputs of 100 frames cut into 16 x 16 patches with strides of
# 16, a grid of 8 x 6 patches). Any backbone preset works, a pretrained one
# too (e.g. `ast_audioset_10_10_0.4593`, to adapt it to your domain).

# %%
import keras_ast

keras_ast.ASTBackbone(
    hidden_dim=96, num_layers=3, num_heads=4, intermediate_dim=192,
    max_length=100, frequency_stride=16, time_stride=16,
).save_to_preset("scratch")

# %% [markdown]
# `keras-ast pretrain` masks 75% of each clip's patches, the encoder reads
# the visible quarter, and a light decoder predicts the hidden ones. Into
# `pt/` it writes `metrics.json` (the reconstruction loss of every epoch), a
# checkpoint, and the backbone alone as `pt/preset` (and, with
# `--validation`, the epoch of lowest validation loss as `pt/best_preset`).
# Like `train`, it resumes after Ctrl-C: run the same command again.

# %%
import warnings

# `!` starts the command by forking this process, where JAX runs; JAX warns
# that a fork of a multithreaded process may deadlock, but the child only
# starts a shell.
warnings.filterwarnings("ignore", message="os.fork")
PRETRAIN = (f"--output pt --epochs {PRETRAIN_EPOCHS} --batch-size 16"
            " --learning-rate 1e-3 --mask-ratio 0.75 --overwrite")
# !keras-ast pretrain --preset scratch --data shards/audio {PRETRAIN}

# %% [markdown]
# The loss is the mean squared error on the masked patches, each normalised
# by its own mean and variance: predicting every patch's mean (the best a
# model that learned nothing about the audio can do) scores about 1.0.

# %%
import json

import matplotlib.pyplot as plt

history = json.load(open("pt/metrics.json"))
figure, ax = plt.subplots(figsize=(5, 3))
ax.plot([h["epoch"] for h in history], [h["loss"] for h in history],
        label="reconstruction loss")
ax.axhline(1.0, color="grey", linestyle="--", label="patch means")
ax.set_xlabel("epoch")
ax.legend()
plt.show()

# %% [markdown]
# What it learned, on a sentence and a voice it never heard:
# `keras_ast.plot.reconstruction` draws the input, the masked patches and the
# reconstruction (visible patches from the input, the masked ones predicted).
# The preset holds the backbone alone; the decoder is in the run's last
# checkpoint (with the optimizer's state, which a picture does not need:
# Keras would warn that it skips it).

# %%
import glob

backbone = keras_ast.ASTBackbone.from_preset("pt/preset")
pretrainer = keras_ast.ASTPretrainer(
    backbone, keras_ast.ASTAudioConverter(max_length=backbone.max_length),
    mask_ratio=0.75, seed=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    pretrainer.load_weights(
        sorted(glob.glob("pt/checkpoints/*.weights.h5"))[-1])

held_out = speak("A quiet river turned the mill wheel", voice="en-us+m3")
keras_ast.plot.reconstruction(pretrainer, held_out)

# %% [markdown]
# ## 3. Fine-tune on a few labels
#
# The labelled set: the four keywords said by two voices only (4 clips per
# word and voice), and three other voices for the test. `make_keyword_dataset`
# writes one folder per split and per word (see `03_fine_tune`).

# %%
from keras_ast.datasets import make_keyword_dataset

counts = make_keyword_dataset(
    "keywords", words=KEYWORDS,
    voices={"train": ["en", "en+f2"],
            "test": ["en-gb-x-rp", "en-us+f3", "en+m4"]},
    speeds=[120, 200], pitches=[35, 65], snr_db=(20.0, 40.0))
print(counts)

# %% [markdown]
# Their shards, with `make_shards` (what `keras-ast make-shards` runs) in this
# process, which saves starting Keras again for each command:

# %%
from keras_ast.data import make_shards

for split in ("train", "test"):
    make_shards(f"keywords/{split}", f"shards/{split}", progress=False)

# %% [markdown]
# The same fine-tuning twice: from the pretrained preset, and from the random
# weights it started from. The head reads the mean of the patch tokens (the
# pretrained preset asks for it: the masked-patch objective never trains the
# [CLS] token); `pooling="mean"` gives the random model the same head. The
# test voices serve as validation only to record the accuracy on unheard
# voices after every epoch: both runs keep their last epoch (`preset`), so
# the test voices choose nothing. `keras_ast.train` is `keras-ast train`;
# the same from a shell:
#
# ```bash
# keras-ast train --preset pt/preset --train shards/train \
#     --validation shards/test --output tuned_pretrained --epochs 20 \
#     --learning-rate 5e-4 --pooling mean --no-mixup --no-spec-augment
# keras-ast train --preset scratch ... --output tuned_scratch ...
# ```

# %%
import time

for preset, run in (("pt/preset", "tuned_pretrained"),
                    ("scratch", "tuned_scratch")):
    start = time.time()
    keras_ast.train(preset, "shards/train", run, validation="shards/test",
                    epochs=EPOCHS, learning_rate=5e-4, pooling="mean",
                    mixup=False, spec_augment=False, overwrite=True,
                    verbose=0)
    print(f"{run}: {EPOCHS} epochs in {time.time() - start:.0f} s")

# %% [markdown]
# ## 4. Compare
#
# Accuracy on the unheard voices, epoch by epoch, and at the end.

# %%
figure, ax = plt.subplots(figsize=(5, 3))
for run in ("tuned_pretrained", "tuned_scratch"):
    history = json.load(open(f"{run}/metrics.json"))
    ax.plot([h["epoch"] for h in history],
            [h["val_accuracy"] for h in history], label=run)
    print(f"{run}: accuracy on unheard voices "
          f"{history[-1]['val_accuracy']:.3f}")
ax.axhline(1 / len(KEYWORDS), color="grey", linestyle="--", label="chance")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy, unheard voices")
ax.legend()
plt.show()

# %% [markdown]
# At this notebook's size (about 12 minutes of unlabelled speech at the
# default size, 32 labelled clips, 48 test clips, a tiny model) the gap
# between the two runs is mostly noise: another seed can reverse it.
# Pretraining pays off with more unlabelled audio and longer runs; the
# documentation's Training page reports the measurement at a real size,
# with its command lines.
#
# ## 5. Your own audio
#
# - Unlabelled: any folder of recordings from your domain, as many as you
#   have (hours help), `keras-ast make-shards DIR shards/unlabelled
#   --unlabelled`, and some held apart for `--validation` (the
#   reconstruction loss on audio not trained on; `best_preset` is then the
#   epoch with the lowest).
# - Labelled: one folder per class, `keras-ast make-shards` without
#   `--unlabelled`, then `keras-ast train --preset pt/preset`.
# - Bigger: a larger backbone (or a pretrained preset to adapt), `--epochs`
#   in the hundreds, `--masking time_blocks` (whole time columns hidden,
#   which suits speech), a GPU, `--mixed-precision`.
