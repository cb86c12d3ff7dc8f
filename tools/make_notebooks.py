"""Writes the Colab tutorials `tutorials/*.ipynb` from the cells below.

Each notebook is a list of (kind, text) cells, "md" or "code"; every one
opens with an "Open in Colab" badge made from the repository URL in
pyproject.toml (`[project.urls] Repository`), its purpose, and a cell that
installs keras_ast on Colab only. Edit the cells here, not the notebooks:

    python tools/make_notebooks.py              # rewrite all, no outputs
    python tools/make_notebooks.py --execute 03_fine_tune
        # rewrite one and run it (current KERAS_BACKEND), keeping its
        # outputs: only notebooks in WITH_OUTPUTS are committed that way

`tests/test_tutorials.py` runs the notebooks and checks that the files
match these cells.
"""

import argparse
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = os.path.join(ROOT, "tutorials")
# Committed with the outputs of a real run; the others without outputs, so
# no output pretends to come from a pretrained model when CI used a random
# one.
WITH_OUTPUTS = ("03_fine_tune",)


def repository_url():
    """`[project.urls] Repository` of pyproject.toml (no trailing slash)."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        urls = tomllib.load(f)["project"].get("urls", {})
    if "Repository" not in urls:
        raise SystemExit("pyproject.toml has no [project.urls] Repository")
    return urls["Repository"].rstrip("/").removesuffix(".git")


def colab_badge(name):
    """The "Open In Colab" badge of `tutorials/<name>.ipynb`."""
    owner_repo = repository_url().split("github.com/", 1)[-1]
    return ("[![Open In Colab](https://colab.research.google.com/assets/"
            "colab-badge.svg)](https://colab.research.google.com/github/"
            f"{owner_repo}/blob/main/tutorials/{name}.ipynb)")


def install_cell(extras, apt=True, pip_extra=""):
    """Installs keras_ast (and espeak-ng, sox) on Colab, nothing elsewhere."""
    lines = ["import sys", "",
             "if \"google.colab\" in sys.modules:  # elsewhere: already "
             "installed (tools/setup.sh)"]
    if apt:
        lines.append("    !apt-get -qq update && apt-get -qq install -y "
                     "espeak-ng sox > /dev/null")
    # Not on PyPI yet: installed from the repository.
    lines.append(f"    !pip install -q \"keras-ast[{extras}] @ "
                 f"git+{repository_url()}\"{pip_extra}")
    return "\n".join(lines)


def backend_cell(default="jax"):
    return "\n".join([
        "import os",
        "",
        "# \"jax\", \"tensorflow\" or \"torch\": set before Keras is "
        "imported.",
        f"os.environ[\"KERAS_BACKEND\"] = os.environ.get(\"KERAS_BACKEND\", "
        f"\"{default}\")",
        "",
        "# Keras' saving starts TensorFlow on any backend: start it now, "
        "without",
        "# its C++ log lines among the outputs.",
        "from keras_ast import import_tensorflow",
        "",
        "import_tensorflow()",
    ])


def header(name, title, purpose):
    return [("md", f"{colab_badge(name)}\n\n# {title}\n\n{purpose}")]


PRESET_CELL = """\
# A built-in preset name (downloaded from the Hugging Face Hub once), an
# owner/repo id, or a local preset folder. Tests point this at a small
# local model with random weights, so their scores mean nothing.
PRESET = os.environ.get("KERAS_AST_TUTORIAL_PRESET", "{default}")"""

CLASSIFY = header(
    "01_classify_sounds", "Classify sounds with a pretrained AST",
    "The Audio Spectrogram Transformer (AST) fine-tuned on AudioSet "
    "recognises 527 everyday sound classes (speech, music, dogs, engines, "
    "...) from raw 16 kHz audio. This notebook loads a pretrained preset, "
    "classifies a file with `classify` (top-k classes with sigmoid scores: "
    "AudioSet's classes are independent, so several can be present at "
    "once), and draws what the model sees (the log-mel spectrogram) and "
    "where its [CLS] token looks (the last layer's attention). It runs on "
    "a CPU runtime in a few minutes; a GPU makes it faster.",
) + [
    ("md", "Install keras_ast (and espeak-ng, sox for the test speech) on "
           "Colab; elsewhere this cell does nothing."),
    ("code", install_cell("plot,audio")),
    ("md", "Pick the Keras backend before Keras is imported: JAX, "
           "TensorFlow and PyTorch give the same scores."),
    ("code", backend_cell()),
    ("md", "Load the pretrained model: `ast_audioset_10_10_0.4593` is the "
           "authors' best single AudioSet model (0.459 mAP, 87M "
           "parameters, 10.24 s inputs). The spectrogram is computed inside "
           "the model, so it takes waveforms."),
    ("code", PRESET_CELL.format(default="ast_audioset_10_10_0.4593") + """

import keras_ast

classifier = keras_ast.ASTClassifier.from_preset(PRESET)
print(f"{classifier.count_params():,} parameters, "
      f"{len(classifier.labels)} classes, "
      f"multi_label={classifier.multi_label}")"""),
    ("md", "Make a sound file to classify: a sentence spoken by espeak-ng "
           "over a little background noise, written as a WAV file. Replace "
           "`path` with any file of your own (WAV, FLAC, OGG, MP3; any rate, "
           "mono or stereo)."),
    ("code", """\
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
print(f"{path}: {len(audio) / 16000:.2f} s")"""),
    ("md", "`classify` decodes the file (mixed down to mono, resampled to "
           "16 kHz) and returns `(label, score)` pairs, best first. Scores "
           "are sigmoids: each says how sure the model is that this class "
           "is present, independently of the others."),
    ("code", """\
for label, score in classifier.classify(path, top_k=5):
    print(f"{score:6.3f}  {label}")"""),
    ("md", "`threshold=` keeps every class above a score instead of a fixed "
           "number, and a list of inputs (paths or arrays) gives one list "
           "per input."),
    ("code", """\
waveform = keras_ast.load_audio(path)   # mono float32 at 16 kHz
noise = 0.1 * rng.standard_normal(16000 * 3).astype("float32")
for name, result in zip(["speech", "noise"], classifier.classify(
        [waveform, noise], sampling_rate=16000, top_k=3)):
    print(name, [(label, round(score, 3)) for label, score in result])"""),
    ("md", "What the model sees: the Kaldi-style log-mel filter banks its "
           "converter computes (128 mel bins every 10 ms)."),
    ("code", """\
from keras_ast import plot

plot.spectrogram(waveform, converter=classifier.preprocessor,
                 title="speech.wav")"""),
    ("md", "Where it looks: the last layer's [CLS] attention over the "
           "spectrogram patches, averaged over heads. Attention on the "
           "zero padding past the audio is reported in the title."),
    ("code", "plot.attention(classifier, waveform)"),
    ("md", "Next: `02_long_recordings` tags recordings longer than one "
           "input, and `03_fine_tune` trains a model on your own sounds."),
]

LONG = header(
    "02_long_recordings", "Tag long recordings",
    "A model looks at one fixed window (10.24 s for AudioSet). `tag` "
    "slides that window over a recording of any length, scores all windows "
    "in fixed-size batches (memory is one batch, however long the file), "
    "and merges the windows where a class scores high into events with an "
    "onset and an offset. This notebook makes a one-minute recording "
    "(speech, noise, a beeping tone, silence), tags it, draws the timeline "
    "and prints the events as a table and as CSV.",
) + [
    ("md", "Install keras_ast, espeak-ng and sox on Colab only."),
    ("code", install_cell("plot,audio")),
    ("md", "Pick the backend."),
    ("code", backend_cell()),
    ("md", "Load a pretrained AudioSet model."),
    ("code", PRESET_CELL.format(default="ast_audioset_10_10_0.4593") + """

import keras_ast

classifier = keras_ast.ASTClassifier.from_preset(PRESET)
window = classifier.preprocessor.num_samples / 16000
print(f"The model's window: {window:.2f} s")"""),
    ("md", "Build a recording of a little over a minute from parts with "
           "known times: speech by two voices, white noise, a 1 kHz beep "
           "every half second, and quiet gaps. Use your own file instead "
           "by setting `path`."),
    ("code", """\
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
print(f"{path}: {len(recording) / RATE:.1f} s")"""),
    ("md", "`tag` cuts the recording into windows every `hop_seconds` "
           "(half a window by default), scores each, and keeps an event "
           "where a class is among a window's `top_k` with at least "
           "`threshold`; consecutive windows merge into one event."),
    ("code", """\
timeline = classifier.tag(path, hop_seconds=window / 2, top_k=3,
                          threshold=0.1)
print(f"{len(timeline.starts)} windows of {window:.2f} s, "
      f"{len(timeline.events)} events")"""),
    ("md", "The timeline: one row per class (the highest-scoring ones), one "
           "column per window, colour the score; events are outlined in "
           "red."),
    ("code", """\
from keras_ast import plot

plot.timeline(timeline, top_k=8)"""),
    ("md", "The events as a table (pandas is not needed: a `Timeline` "
           "holds plain `Event`s)."),
    ("code", """\
print(f"{'onset':>7} {'offset':>7}  {'score':>5}  label")
for event in timeline.events:
    print(f"{event.onset:7.2f} {event.offset:7.2f}  {event.score:5.2f}  "
          f"{event.label}")"""),
    ("md", "The same events as CSV, what `keras-ast classify --timeline "
           "--format csv` writes; `timeline.to_dict()` gives JSON."),
    ("code", """\
csv_text = keras_ast.events_csv([timeline])
with open("events.csv", "w") as f:
    f.write(csv_text)
print(csv_text)"""),
    ("md", "The same from a shell, for a folder of recordings:\n\n"
           "```bash\nkeras-ast classify recordings/ --preset "
           "ast_audioset_10_10_0.4593 --timeline --format csv "
           "--output events.csv\n```"),
]

FINE_TUNE = header(
    "03_fine_tune", "Train a classifier on your own sounds",
    "From folders of audio files (one folder per class) to a trained "
    "model: `keras-ast make-shards` packs the files into shards, `train` "
    "fits an AST on them, `evaluate` measures it on held-out files and "
    "draws the confusion matrix, and the trained preset classifies new "
    "files. The data here is a small spoken-keyword set made by espeak-ng "
    "(4 words, many voices), so the notebook runs anywhere, offline, in a "
    "few minutes on a CPU; point `AUDIO` at your own folders to train on "
    "your sounds.",
) + [
    ("md", "Install keras_ast with its data and plot extras, espeak-ng and "
           "sox, on Colab only."),
    ("code", install_cell("data,plot")),
    ("md", "Pick the backend."),
    ("code", backend_cell()),
    ("md", "The number of training epochs (the committed outputs are from "
           "the default; the tests run fewer)."),
    ("code", """\
EPOCHS = int(os.environ.get("KERAS_AST_TUTORIAL_EPOCHS", "20"))
print(f"EPOCHS = {EPOCHS}")"""),
    ("md", "## 1. Folders of audio\n\n"
           "`make-shards` reads a folder with one sub-folder per class:\n\n"
           "```text\nkeywords/train/yes/clip_001.wav\n"
           "keywords/train/no/...\nkeywords/validation/yes/...\n"
           "keywords/test/yes/...\n```\n\n"
           "To use your own sounds, lay them out like this (any format "
           "soundfile reads, any rate) and set `AUDIO` to the top folder; "
           "skip the next cell. Here `make_keyword_dataset` synthesises the "
           "words, each voice in one split only, so the test voices are "
           "unheard."),
    ("code", """\
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
    print(f"{AUDIO}/{split}: {count} files")"""),
    ("md", "## 2. Shards\n\n"
           "`keras-ast make-shards` decodes every file once (mono, 16 kHz), "
           "stores the audio losslessly in TFRecord shards, and writes "
           "`dataset.json`: labels, counts, checksums, and every file it "
           "skipped and why."),
    ("code", """\
for split in VOICES:
    !keras-ast make-shards {AUDIO}/{split} shards/{split} --no-progress
!cat shards/train/dataset.json | head -c 400"""),
    ("md", "## 3. Train\n\n"
           "A small AST from scratch (3 layers, 96 wide: 1 s inputs of 100 "
           "frames). To fine-tune pretrained weights instead, pass a preset "
           "such as `ast_speech_commands_v2` (and `max_length=100`) to "
           "`train`: they learn faster and better, but download 350 MB. "
           "`train` sizes the head from the shards' labels."),
    ("code", """\
import keras_ast

keras_ast.ASTBackbone(
    hidden_dim=96, num_layers=3, num_heads=4, intermediate_dim=192,
    max_length=100, frequency_stride=16, time_stride=10,
).save_to_preset("scratch")"""),
    ("md", "`keras_ast.train` is `keras-ast train`: from scratch on "
           "a few clips a larger rate and no augmentation learn fastest. "
           "It writes a checkpoint and `metrics.json` every epoch, the best "
           "epoch's model in `runs/keywords/best_preset` and the last one "
           "in `runs/keywords/preset`. The same from a shell:\n\n"
           "```bash\nkeras-ast train --preset scratch --train shards/train "
           "--validation shards/validation --output runs/keywords \\\n"
           "    --epochs 20 --learning-rate 1e-3 --no-mixup "
           "--no-spec-augment\n```"),
    ("code", """\
import time

start = time.time()
classifier = keras_ast.train("scratch", "shards/train", "runs/keywords",
                             validation="shards/validation",
                             epochs=EPOCHS, learning_rate=1e-3,
                             mixup=False, spec_augment=False,
                             overwrite=True, verbose=0)
print(f"Trained {EPOCHS} epochs in {time.time() - start:.0f} s; "
      f"labels {classifier.labels}")"""),
    ("md", "The learning curves, from `metrics.json`."),
    ("code", """\
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
plt.show()"""),
    ("md", "## 4. Evaluate\n\n"
           "`evaluate` runs the best model over the test shards (voices it "
           "never heard), prints accuracy, F1 and per-word figures, and "
           "writes `evaluation.json` and the confusion matrix: rows are the "
           "true words, columns the predicted ones. The same from a "
           "shell:\n\n"
           "```bash\nkeras-ast evaluate --preset runs/keywords/best_preset "
           "--data shards/test --output runs/keywords/test\n```"),
    ("code", """\
report = keras_ast.evaluate("runs/keywords/best_preset", "shards/test",
                            output="runs/keywords/test")
print(keras_ast.format_report(report))"""),
    ("code", """\
from IPython.display import Image

Image("runs/keywords/test/confusion_matrix.png")"""),
    ("md", "## 5. Classify new files\n\n"
           "The trained preset loads like any other (`from_preset`) and "
           "classifies files of any length and rate: here, words by an "
           "unheard voice at 44.1 kHz."),
    ("code", """\
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
                                        for label, score in result))"""),
    ("md", "The same from a shell: `keras-ast classify new_yes.wav --preset "
           "runs/keywords/best_preset`. `04_export_and_serve` turns the "
           "preset into a SavedModel, ONNX and LiteRT file."),
]

EXPORT = header(
    "04_export_and_serve", "Export and serve: SavedModel, ONNX, LiteRT",
    "A trained classifier leaves Keras as a file that takes raw 16 kHz "
    "waveforms (the spectrogram is inside) and returns logits and scores: "
    "a TensorFlow SavedModel for TF Serving, an ONNX file for ONNX Runtime, "
    "and a LiteRT (TFLite) file for phones and small devices. This notebook "
    "exports a pretrained Speech Commands model to all three, runs each "
    "runtime on spoken words, and checks that every one gives the labels "
    "Keras gives. Exports need the TensorFlow backend; a model trained on "
    "JAX or PyTorch moves over as a preset (`save_to_preset`).",
) + [
    ("md", "Install keras_ast with the export runtimes (onnxruntime, "
           "tf2onnx, ai-edge-litert) on Colab only."),
    ("code", install_cell("export,audio")),
    ("md", "The backend: TensorFlow, which all three exporters need."),
    ("code", backend_cell(default="tensorflow")),
    ("md", "Load a model: the authors' Speech Commands V2 model (35 "
           "words, 1.28 s inputs), or your own preset folder."),
    ("code", PRESET_CELL.format(default="ast_speech_commands_v2") + """

import keras
import keras_ast

assert keras.config.backend() == "tensorflow", "export needs TensorFlow"
classifier = keras_ast.ASTClassifier.from_preset(PRESET)
print(f"{classifier.count_params():,} parameters, "
      f"{len(classifier.labels)} classes")"""),
    ("md", "Test clips: four spoken words, each as long as the model's "
           "input, and the labels Keras gives them."),
    ("code", """\
import numpy as np
from keras_ast.datasets import speak

num_samples = classifier.preprocessor.num_samples
clips = np.zeros((4, num_samples), "float32")
for row, word in enumerate(["yes", "no", "up", "down"]):
    speech = speak(word, voice="en-us", speed=150)
    clips[row, :len(speech)] = speech[:num_samples]
keras_top = classifier.predict_scores(clips).argmax(-1)
keras_labels = [classifier.labels[i] for i in keras_top]
print("Keras:", keras_labels)"""),
    ("md", "## SavedModel\n\n"
           "`export` writes TF Serving's layout (`models/ast/1/`) with "
           "signatures `serve` (waveforms -> logits), `scores`, `classify` "
           "(top-k label strings) and `serve_wav` (encoded WAV files). "
           "Loading it needs TensorFlow only, not Keras or keras_ast."),
    ("code", """\
import tensorflow as tf

classifier.export("models/ast", serving_version=1, top_k=3)
served = tf.saved_model.load("models/ast/1")
top = served.signatures["classify"](waveforms=tf.constant(clips))
saved_model_labels = [label.decode() for label in top["labels"][:, 0].numpy()]
print("SavedModel:", saved_model_labels)
assert saved_model_labels == keras_labels"""),
    ("md", "TF Serving serves that folder over REST (port 8501) and gRPC "
           "(8500). Not run here (it needs Docker); the command and a "
           "request body for the `classify` signature:"),
    ("code", """\
import json

print('docker run -p 8501:8501 -p 8500:8500 '
      '-v "$PWD/models/ast:/models/ast" -e MODEL_NAME=ast tensorflow/serving')
request = {"signature_name": "classify",
           "instances": [np.round(clips[0].astype(float), 4).tolist()]}
with open("request.json", "w") as f:
    json.dump(request, f)
print("curl -d @request.json localhost:8501/v1/models/ast:predict")
print(json.dumps(request)[:120], "...")"""),
    ("md", "## ONNX Runtime\n\n"
           "The ONNX file computes the spectrum as an exact DFT matrix "
           "product (ONNX has no real FFT op); batch and length are "
           "dynamic."),
    ("code", """\
import onnxruntime

classifier.export("ast.onnx", format="onnx")
session = onnxruntime.InferenceSession("ast.onnx")
logits, scores = session.run(["logits", "scores"], {"waveforms": clips})
# ONNX cannot raise: a clip with no samples or a NaN or infinite sample
# gets NaN scores (that clip only). Check before use.
assert not np.isnan(scores).any()
onnx_labels = [classifier.labels[i] for i in scores.argmax(-1)]
print("ONNX Runtime:", onnx_labels)
assert onnx_labels == keras_labels"""),
    ("md", "## LiteRT\n\n"
           "LiteRT (formerly TFLite) runs on Android, iOS and "
           "microcontrollers; `quantization=\"float16\"` or "
           "`\"dynamic_int8\"` makes the file 2 or 4 times smaller."),
    ("code", """\
from ai_edge_litert.interpreter import Interpreter

classifier.export("ast.tflite", format="litert")
interpreter = Interpreter(model_path="ast.tflite")
runner = interpreter.get_signature_runner()
outputs = runner(waveforms=clips)
assert not np.isnan(outputs["scores"]).any()  # as for ONNX
litert_labels = [classifier.labels[i] for i in outputs["scores"].argmax(-1)]
print("LiteRT:", litert_labels)
assert litert_labels == keras_labels"""),
    ("md", "File sizes. Every runtime gave Keras' labels."),
    ("code", """\
for path in ("models/ast/1/saved_model.pb", "models/ast/1/variables",
             "ast.onnx", "ast.tflite"):
    size = (sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(path) for name in names)
            if os.path.isdir(path) else os.path.getsize(path))
    print(f"{size / 1e6:8.1f} MB  {path}")"""),
]

PORT = header(
    "05_port_a_checkpoint", "Port the authors' checkpoint to keras_ast",
    "The AST authors published PyTorch `.pth` files (`module.v.*` names, "
    "fused query-key-value weights). `keras-ast convert` turns one into a "
    "keras_ast preset, `--verify` checks its logits against Hugging Face "
    "`transformers` on speech, and `upload_preset` publishes it on the "
    "Hugging Face Hub, where anyone loads it with `from_preset`. Without a "
    "real checkpoint at hand, the notebook makes a small one with random "
    "weights in the authors' format.",
) + [
    ("md", "Install keras_ast, espeak-ng and sox on Colab only "
           "(`transformers` and PyTorch, used by `--verify`, are already "
           "there)."),
    ("code", install_cell("audio", pip_extra=" transformers")),
    ("md", "Pick the backend (the converted preset loads on any)."),
    ("code", backend_cell()),
    ("md", "The checkpoint: set `KERAS_AST_TUTORIAL_PTH` (or `PTH`) to a "
           "file of the authors, e.g. `speechcommands_10_10_0.9812.pth` "
           "(its name gives the geometry). Otherwise the next cell writes "
           "a small one: 2 layers of width 192 instead of 12 of 768, the "
           "Speech Commands geometry (128 frames, strides 10/10), 35 "
           "classes."),
    ("code", """\
PTH = os.environ.get("KERAS_AST_TUTORIAL_PTH",
                     "speechcommands_10_10_0.9812.pth")"""),
    ("code", """\
import torch

def authors_checkpoint(path, width=192, layers=2, classes=35, frames=128,
                       stride=10, seed=0):
    \"\"\"Random weights under the names the authors' code saves.\"\"\"
    torch.manual_seed(seed)
    grid = ((128 - 16) // stride + 1) * ((frames - 16) // stride + 1)
    def r(*shape):
        return 0.05 * torch.randn(*shape)
    state = {"module.v.cls_token": r(1, 1, width),
             "module.v.dist_token": r(1, 1, width),
             "module.v.pos_embed": r(1, grid + 2, width),
             "module.v.patch_embed.proj.weight": r(width, 1, 16, 16),
             "module.v.patch_embed.proj.bias": r(width),
             "module.v.norm.weight": 1 + r(width),
             "module.v.norm.bias": r(width),
             "module.mlp_head.0.weight": 1 + r(width),
             "module.mlp_head.0.bias": r(width),
             "module.mlp_head.1.weight": r(classes, width),
             "module.mlp_head.1.bias": r(classes)}
    for i in range(layers):
        block = f"module.v.blocks.{i}."
        state.update({
            block + "norm1.weight": 1 + r(width),
            block + "norm1.bias": r(width),
            block + "attn.qkv.weight": r(3 * width, width),
            block + "attn.qkv.bias": r(3 * width),
            block + "attn.proj.weight": r(width, width),
            block + "attn.proj.bias": r(width),
            block + "norm2.weight": 1 + r(width),
            block + "norm2.bias": r(width),
            block + "mlp.fc1.weight": r(4 * width, width),
            block + "mlp.fc1.bias": r(4 * width),
            block + "mlp.fc2.weight": r(width, 4 * width),
            block + "mlp.fc2.bias": r(width)})
    torch.save(state, path)

if not os.path.exists(PTH):
    authors_checkpoint(PTH)
    print(f"wrote a random-weight checkpoint: {PTH}")
state = torch.load(PTH, map_location="cpu", weights_only=True)
print(len(state), "tensors, e.g.", list(state)[:3])"""),
    ("md", "Labels: a text file, one a line (or AudioSet's "
           "`class_labels_indices.csv`). These are Speech Commands V2's "
           "35 words, in the order of its head."),
    ("code", """\
WORDS = ("backward bed bird cat dog down eight five follow forward four go "
         "happy house learn left marvin nine no off on one right seven "
         "sheila six stop three tree two up visual wow yes zero").split()
with open("labels.txt", "w") as f:
    f.write("\\n".join(WORDS) + "\\n")
print(len(WORDS), "labels")"""),
    ("md", "## Convert and verify\n\n"
           "`--verify` runs the same weights in `transformers` on "
           "synthetic speech and refuses to write the preset (exit status "
           "1) if the logits differ by more than `--tolerance` (1e-3). A "
           "file that would run code when unpickled is refused before "
           "anything runs."),
    ("code", """\
!keras-ast convert --source {PTH} --output ast_speech_commands --labels labels.txt --single-label --verify"""),
    ("md", "The folder is a keras_ast preset: `config.json`, the weights, "
           "`labels.json` and `metadata.json` (source, its sha256, "
           "versions, the verified logit difference)."),
    ("code", """\
import json

print(sorted(os.listdir("ast_speech_commands")))
metadata = json.load(open("ast_speech_commands/metadata.json"))
print({k: metadata[k] for k in ("source", "parameter_count",
                                "verified_max_abs_logit_difference")})"""),
    ("md", "Load it like any preset, on any backend. (With random weights "
           "the words it hears are random too.)"),
    ("code", """\
import keras_ast
from keras_ast.datasets import speak

classifier = keras_ast.ASTClassifier.from_preset("ast_speech_commands")
clip = speak("yes", voice="en-us")
print(classifier.classify(clip, sampling_rate=16000, top_k=3))"""),
    ("md", "## Upload to the Hugging Face Hub\n\n"
           "`upload_preset` creates the repository if needed and adds a "
           "model card. It needs a write token (`HF_TOKEN`: on Colab, add "
           "it under Secrets; elsewhere `hf auth login` or the environment "
           "variable) and the repository to write, `HUB_REPO` "
           "(`hf://your-name/ast-speech-commands-keras`). Without both the "
           "cell says so and uploads nothing; tests never upload. Then "
           "anyone loads it with `ASTClassifier.from_preset(\"your-name/"
           "ast-speech-commands-keras\")`."),
    ("code", """\
HUB_REPO = os.environ.get("KERAS_AST_TUTORIAL_HUB_REPO", "")  # hf://owner/repo
token = os.environ.get("HF_TOKEN")
if token is None and "google.colab" in sys.modules:
    from google.colab import userdata
    try:
        token = os.environ["HF_TOKEN"] = userdata.get("HF_TOKEN")
    except Exception:  # no such secret, or access not granted
        token = None
if token and HUB_REPO:
    uri = keras_ast.upload_preset(HUB_REPO, "ast_speech_commands")
    print("uploaded:", uri)
else:
    print("Not uploading: set HF_TOKEN and HUB_REPO to publish it.")"""),
]

NOTEBOOKS = {
    "01_classify_sounds": CLASSIFY,
    "02_long_recordings": LONG,
    "03_fine_tune": FINE_TUNE,
    "04_export_and_serve": EXPORT,
    "05_port_a_checkpoint": PORT,
}


def build(name):
    """The notebook `name` (nbformat v4), with no outputs."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3",
                       "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    }
    for index, (kind, text) in enumerate(NOTEBOOKS[name]):
        make = (nbformat.v4.new_markdown_cell if kind == "md"
                else nbformat.v4.new_code_cell)
        # Stable ids: regenerating leaves unchanged cells unchanged.
        notebook.cells.append(make(text, id=f"cell-{index:02d}"))
    return notebook


def path_of(name):
    return os.path.join(TUTORIALS, f"{name}.ipynb")


def execute(notebook, directory, timeout=1800, env=None):
    """Runs `notebook` in `directory`, in place, with this Python.

    Args:
        notebook: an nbformat notebook; its cells get their outputs.
        directory: the working directory of the kernel.
        timeout: seconds one cell may run.
        env: variables to set for the kernel, over this process's.

    Example:
    >>> execute(build("03_fine_tune"), "/tmp/run",
    ...         env={"KERAS_BACKEND": "jax"})
    """
    from nbclient import NotebookClient

    env = dict(os.environ, **(env or {}))
    # `!keras-ast ...` cells run this environment's command; the kernel
    # ("python3", ipykernel's) is this interpreter: jupyter_client puts
    # sys.executable in place of a kernelspec's "python".
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get(
        "PATH", "")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": directory}}).execute(
                       env=env)
    return notebook


def main(argv=None):
    import tempfile

    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--execute", metavar="NAME", choices=WITH_OUTPUTS,
                        help="also run this notebook and keep its outputs")
    args = parser.parse_args(argv)
    for name in NOTEBOOKS:
        if name == args.execute:
            continue
        if name in WITH_OUTPUTS and os.path.exists(path_of(name)):
            # Keep the committed outputs when the cells are unchanged.
            old = nbformat.read(path_of(name), as_version=4)
            if [c.source for c in old.cells] == [
                    c.source for c in build(name).cells]:
                continue
            print(f"warning: {name}'s cells changed; its outputs are "
                  f"dropped (rerun with --execute {name})", file=sys.stderr)
        nbformat.write(build(name), path_of(name))
        print("wrote", path_of(name))
    if args.execute:
        notebook = build(args.execute)
        with tempfile.TemporaryDirectory() as directory:
            execute(notebook, directory)
        for cell in notebook.cells:  # times and hosts are noise in diffs
            cell.metadata.pop("execution", None)
        nbformat.write(notebook, path_of(args.execute))
        print("wrote", path_of(args.execute), "with its outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
