# %% [markdown]
# # Tag long recordings
#
# A model looks at one fixed window (10.24 s for AudioSet). `tag` slides that
# window over a recording of any length, scores all windows in fixed-size
# batches (memory is one batch, however long the file), and merges the windows
# where a class scores high into events with an onset and an offset. This
# notebook makes a one-minute recording (speech, noise, a beeping tone,
# silence), tags it, draws the timeline and prints the events as a table and as
# CSV.

# %% [markdown] colab_install="plot,audio"
# Install keras_ast, espeak-ng and sox on Colab only.

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
# Load a pretrained AudioSet model.

# %%
# A built-in preset name (downloaded from the Hugging Face Hub once), an
# owner/repo id, or a local preset folder. Tests point this at a small
# local model with random weights, so their scores mean nothing.
PRESET = os.environ.get("KERAS_AST_TUTORIAL_PRESET",
                        "ast_audioset_10_10_0.4593")

import keras_ast

classifier = keras_ast.ASTClassifier.from_preset(PRESET)
window = classifier.preprocessor.num_samples / 16000
print(f"The model's window: {window:.2f} s")

# %% [markdown]
# Build a recording of a little over a minute from parts with known times:
# speech by two voices, white noise, a 1 kHz beep every half second, and quiet
# gaps. Use your own file instead by setting `path`.

# %%
import numpy as np
import soundfile
from keras_ast.datasets import speak

RATE = 16000
rng = np.random.default_rng(0)

def quiet(seconds):
    return 0.002 * rng.standard_normal(int(seconds * RATE)).astype("float32")

def beeps(seconds):
    t = np.arange(int(seconds * RATE)) / RATE
    on = (t % 0.5) < 0.25
    return (0.3 * np.sin(2 * np.pi * 1000 * t) * on).astype("float32")

def speech(text, voice):
    return speak(text, voice=voice, speed=150)

parts = [
    ("quiet", quiet(5)),
    ("speech", speech("Good morning. This recording is a test of tagging "
                      "long audio files, one window at a time. The model "
                      "will find where people talk.", "en-us")),
    ("quiet", quiet(6)),
    ("noise", 0.2 * rng.standard_normal(15 * RATE).astype("float32")),
    ("quiet", quiet(6)),
    ("beeps", beeps(15)),
    ("speech", speech("And here is a second voice, reading another "
                      "sentence near the end of the file.", "en+f3")),
    ("quiet", quiet(5)),
]
onset = 0.0
for name, part in parts:
    print(f"{onset:6.1f} - {onset + len(part) / RATE:6.1f} s  {name}")
    onset += len(part) / RATE
recording = np.concatenate([part for _, part in parts])
path = "recording.wav"
soundfile.write(path, recording, RATE)
print(f"{path}: {len(recording) / RATE:.1f} s")

# %% [markdown]
# `tag` cuts the recording into windows every `hop_seconds` (half a window by
# default), scores each, and keeps an event where a class is among a window's
# `top_k` with at least `threshold`; consecutive windows merge into one event.

# %%
timeline = classifier.tag(path, hop_seconds=window / 2, top_k=3,
                          threshold=0.1)
print(f"{len(timeline.starts)} windows of {window:.2f} s, "
      f"{len(timeline.events)} events")

# %% [markdown]
# The timeline: one row per class (the highest-scoring ones), one column per
# window, colour the score; events are outlined in red.

# %%
from keras_ast import plot

plot.timeline(timeline, top_k=8)

# %% [markdown]
# The events as a table (pandas is not needed: a `Timeline` holds plain
# `Event`s).

# %%
print(f"{'onset':>7} {'offset':>7}  {'score':>5}  label")
for event in timeline.events:
    print(f"{event.onset:7.2f} {event.offset:7.2f}  {event.score:5.2f}  "
          f"{event.label}")

# %% [markdown]
# The same events as CSV, what `keras-ast classify --timeline --format csv`
# writes; `timeline.to_dict()` gives JSON.

# %%
csv_text = keras_ast.events_csv([timeline])
with open("events.csv", "w") as f:
    f.write(csv_text)
print(csv_text)

# %% [markdown]
# The same from a shell, for a folder of recordings:
#
# ```bash
# keras-ast classify recordings/ --preset ast_audioset_10_10_0.4593 \
#     --timeline --format csv --output events.csv
# ```
