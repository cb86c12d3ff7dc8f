# %% [markdown]
# # Export and serve: SavedModel, ONNX, LiteRT
#
# A trained classifier leaves Keras as a file that takes raw 16 kHz waveforms
# (the spectrogram is inside) and returns logits and scores: a TensorFlow
# SavedModel for TF Serving, an ONNX file for ONNX Runtime, and a LiteRT
# (TFLite) file for phones and small devices. This notebook exports a
# pretrained Speech Commands model to all three, runs each runtime on spoken
# words, and checks that every one gives the labels Keras gives. Exports need
# the TensorFlow backend; a model trained on JAX or PyTorch moves over as a
# preset (`save_to_preset`).

# %% [markdown] colab_install="export,audio"
# Install keras_ast with the export runtimes (onnxruntime, tf2onnx,
# ai-edge-litert) on Colab only.

# %% [markdown]
# The backend: TensorFlow, which all three exporters need.

# %%
import os

# "jax", "tensorflow" or "torch": set before Keras is imported.
os.environ["KERAS_BACKEND"] = os.environ.get("KERAS_BACKEND", "tensorflow")

# Keras' saving starts TensorFlow on any backend: start it now, without
# its C++ log lines among the outputs.
from keras_ast import import_tensorflow

import_tensorflow()

# %% [markdown]
# Load a model: the authors' Speech Commands V2 model (35 words, 1.28 s
# inputs), or your own preset folder.

# %%
# A built-in preset name (downloaded from the Hugging Face Hub once), an
# owner/repo id, or a local preset folder. Tests point this at a small
# local model with random weights, so their scores mean nothing.
PRESET = os.environ.get("KERAS_AST_TUTORIAL_PRESET", "ast_speech_commands_v2")

import keras
import keras_ast

assert keras.config.backend() == "tensorflow", "export needs TensorFlow"
classifier = keras_ast.ASTClassifier.from_preset(PRESET)
print(f"{classifier.count_params():,} parameters, "
      f"{len(classifier.labels)} classes")

# %% [markdown]
# Test clips: four spoken words, each as long as the model's input, and the
# labels Keras gives them.

# %%
import numpy as np
from keras_ast.datasets import speak

num_samples = classifier.preprocessor.num_samples
clips = np.zeros((4, num_samples), "float32")
for row, word in enumerate(["yes", "no", "up", "down"]):
    speech = speak(word, voice="en-us", speed=150)
    clips[row, :len(speech)] = speech[:num_samples]
keras_top = classifier.predict_scores(clips).argmax(-1)
keras_labels = [classifier.labels[i] for i in keras_top]
print("Keras:", keras_labels)

# %% [markdown]
# ## SavedModel
#
# `export` writes TF Serving's layout (`models/ast/1/`) with signatures `serve`
# (waveforms -> logits), `scores`, `classify` (top-k label strings) and
# `serve_wav` (encoded WAV files). Loading it needs TensorFlow only, not Keras
# or keras_ast.

# %%
import tensorflow as tf

classifier.export("models/ast", serving_version=1, top_k=3)
served = tf.saved_model.load("models/ast/1")
top = served.signatures["classify"](waveforms=tf.constant(clips))
saved_model_labels = [label.decode() for label in top["labels"][:, 0].numpy()]
print("SavedModel:", saved_model_labels)
assert saved_model_labels == keras_labels

# %% [markdown]
# TF Serving serves that folder over REST (port 8501) and gRPC (8500). Not run
# here (it needs Docker); the command and a request body for the `classify`
# signature:

# %%
import json

print('docker run -p 8501:8501 -p 8500:8500 '
      '-v "$PWD/models/ast:/models/ast" -e MODEL_NAME=ast tensorflow/serving')
request = {"signature_name": "classify",
           "instances": [np.round(clips[0].astype(float), 4).tolist()]}
with open("request.json", "w") as f:
    json.dump(request, f)
print("curl -d @request.json localhost:8501/v1/models/ast:predict")
print(json.dumps(request)[:120], "...")

# %% [markdown]
# ## ONNX Runtime
#
# The ONNX file computes the spectrum as an exact DFT matrix product (ONNX has
# no real FFT op); batch and length are dynamic.

# %%
import onnxruntime

classifier.export("ast.onnx", format="onnx")
session = onnxruntime.InferenceSession("ast.onnx")
logits, scores = session.run(["logits", "scores"], {"waveforms": clips})
# ONNX cannot raise: a clip with no samples or a NaN or infinite sample
# gets NaN scores (that clip only). Check before use.
assert not np.isnan(scores).any()
onnx_labels = [classifier.labels[i] for i in scores.argmax(-1)]
print("ONNX Runtime:", onnx_labels)
assert onnx_labels == keras_labels

# %% [markdown]
# ## LiteRT
#
# LiteRT (formerly TFLite) runs on Android, iOS and microcontrollers;
# `quantization="float16"` or `"dynamic_int8"` makes the file 2 or 4 times
# smaller.

# %%
from ai_edge_litert.interpreter import Interpreter

classifier.export("ast.tflite", format="litert")
interpreter = Interpreter(model_path="ast.tflite")
runner = interpreter.get_signature_runner()
outputs = runner(waveforms=clips)
assert not np.isnan(outputs["scores"]).any()  # as for ONNX
litert_labels = [classifier.labels[i] for i in outputs["scores"].argmax(-1)]
print("LiteRT:", litert_labels)
assert litert_labels == keras_labels

# %% [markdown]
# File sizes. Every runtime gave Keras' labels.

# %%
for path in ("models/ast/1/saved_model.pb", "models/ast/1/variables",
             "ast.onnx", "ast.tflite"):
    size = (sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(path) for name in names)
            if os.path.isdir(path) else os.path.getsize(path))
    print(f"{size / 1e6:8.1f} MB  {path}")
