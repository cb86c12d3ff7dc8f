# %% [markdown]
# # Port the authors' checkpoint to keras_ast
#
# The AST authors published PyTorch `.pth` files (`module.v.*` names, fused
# query-key-value weights). `keras-ast convert` turns one into a keras_ast
# preset, `--verify` checks its logits against Hugging Face `transformers` on
# speech, and `upload_preset` publishes it on the Hugging Face Hub, where
# anyone loads it with `from_preset`. Without a real checkpoint at hand, the
# notebook makes a small one with random weights in the authors' format.

# %% [markdown] colab_install="audio" colab_pip="transformers"
# Install keras_ast, espeak-ng and sox on Colab only (`transformers` and
# PyTorch, used by `--verify`, are already there).

# %% [markdown]
# Pick the backend (the converted preset loads on any).

# %%
import os

# "jax", "tensorflow" or "torch": set before Keras is imported.
os.environ["KERAS_BACKEND"] = os.environ.get("KERAS_BACKEND", "jax")

# Keras' saving starts TensorFlow on any backend: start it now, without
# its C++ log lines among the outputs.
from keras_ast import import_tensorflow

import_tensorflow()

# %% [markdown]
# The checkpoint: set `KERAS_AST_TUTORIAL_PTH` (or `PTH`) to a file of the
# authors, e.g. `speechcommands_10_10_0.9812.pth` (its name gives the
# geometry). Otherwise the next cell writes a small one: 2 layers of width 192
# instead of 12 of 768, the Speech Commands geometry (128 frames, strides
# 10/10), 35 classes.

# %%
PTH = os.environ.get("KERAS_AST_TUTORIAL_PTH",
                     "speechcommands_10_10_0.9812.pth")

# %%
import torch

def authors_checkpoint(path, width=192, layers=2, classes=35, frames=128,
                       stride=10, seed=0):
    """Random weights under the names the authors' code saves."""
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
print(len(state), "tensors, e.g.", list(state)[:3])

# %% [markdown]
# Labels: a text file, one a line (or AudioSet's `class_labels_indices.csv`).
# These are Speech Commands V2's 35 words, in the order of its head.

# %%
WORDS = ("backward bed bird cat dog down eight five follow forward four go "
         "happy house learn left marvin nine no off on one right seven "
         "sheila six stop three tree two up visual wow yes zero").split()
with open("labels.txt", "w") as f:
    f.write("\n".join(WORDS) + "\n")
print(len(WORDS), "labels")

# %% [markdown]
# ## Convert and verify
#
# `--verify` runs the same weights in `transformers` on synthetic speech and
# refuses to write the preset (exit status 1) if the logits differ by more than
# `--tolerance` (1e-3). A file that would run code when unpickled is refused
# before anything runs.

# %%
FLAGS = "--labels labels.txt --single-label --verify"
# !keras-ast convert --source {PTH} --output ast_speech_commands {FLAGS}

# %% [markdown]
# The folder is a keras_ast preset: `config.json`, the weights, `labels.json`
# and `metadata.json` (source, its sha256, versions, the verified logit
# difference).

# %%
import json

print(sorted(os.listdir("ast_speech_commands")))
metadata = json.load(open("ast_speech_commands/metadata.json"))
print({k: metadata[k] for k in ("source", "parameter_count",
                                "verified_max_abs_logit_difference")})

# %% [markdown]
# Load it like any preset, on any backend. (With random weights the words it
# hears are random too.)

# %%
import keras_ast
from keras_ast.datasets import speak

classifier = keras_ast.ASTClassifier.from_preset("ast_speech_commands")
clip = speak("yes", voice="en-us")
print(classifier.classify(clip, sampling_rate=16000, top_k=3))

# %% [markdown]
# ## Upload to the Hugging Face Hub
#
# `upload_preset` creates the repository if needed and adds a model card. It
# needs a write token (`HF_TOKEN`: on Colab, add it under Secrets; elsewhere
# `hf auth login` or the environment variable) and the repository to write,
# `HUB_REPO` (`hf://your-name/ast-speech-commands-keras`). Without both the
# cell says so and uploads nothing; tests never upload. Then anyone loads it
# with `ASTClassifier.from_preset("your-name/ast-speech-commands-keras")`.

# %%
import sys

# hf://owner/repo
HUB_REPO = os.environ.get("KERAS_AST_TUTORIAL_HUB_REPO", "")
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
    print("Not uploading: set HF_TOKEN and HUB_REPO to publish it.")
