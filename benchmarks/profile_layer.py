#!/usr/bin/env python
"""Where the time of an AST forward pass goes, per backend, on this CPU.

Times one encoder layer at AudioSet geometry (4 clips, 1214 tokens, width
768, 12 heads, MLP 3072) and its parts: the four 768x768 projections, the
two MLP matrix products, the attention core (the fused kernel,
`keras_ast.ops.attention.fused_attention`, or `torch_sdpa_attention` on
PyTorch), the same attention as plain products
(`keras_ast.ops.attention.attention_products`, what the layer runs on a
CPU under JAX and TensorFlow) and the whole layer; "the rest" (LayerNorms,
GELU, residuals, reshapes) is the whole minus the parts the layer runs.
Each Keras backend runs in its own process, the parts compiled as
`predict` runs them on a CPU-only machine (`jax.jit`, a `tf.function`
graph without XLA, eager PyTorch under `no_grad`), beside `transformers`'
`ASTLayer` (sdpa) and plain `torch.matmul` on the same shapes. Prints a
Markdown table; the findings are in
goes").

    python benchmarks/profile_layer.py
"""

import json
import os
import statistics
import subprocess
import sys
import time

BATCH, TOKENS, WIDTH, HEADS, INNER = 4, 1214, 768, 12, 3072
PARTS = ("projections (4)", "MLP products (2)", "attention core",
         "attention as products", "whole layer")


def timed(run, iters=5):
    """Median seconds of `run()` after two untimed calls."""
    run()
    run()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_parts():
    """The parts on this process's Keras backend: `{part: seconds}`."""
    import keras
    import numpy as np
    from keras import ops

    from keras_ast import ASTEncoderLayer
    from keras_ast.ops import attention
    from keras_ast.ops import compiler

    backend = keras.config.backend()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, TOKENS, WIDTH)).astype("float32")
    heads = x.reshape(BATCH, TOKENS, HEADS, WIDTH // HEADS)
    # Four different weights: a compiler would compute equal products once.
    w = rng.standard_normal((4, WIDTH, WIDTH)).astype("float32") / 30
    w1 = rng.standard_normal((WIDTH, INNER)).astype("float32") / 30
    w2 = rng.standard_normal((INNER, WIDTH)).astype("float32") / 60
    layer = ASTEncoderLayer(WIDTH, HEADS, INNER)
    layer.build(x.shape)
    fused = (attention.torch_sdpa_attention if backend == "torch"
             else attention.fused_attention)
    if backend == "jax":
        uses_fused = not compiler.jax_on_cpu()
    elif backend == "tensorflow":
        import tensorflow as tf

        uses_fused = bool(tf.config.list_logical_devices("GPU"))
    else:
        uses_fused = True

    def compile_(fn):
        if backend == "jax":
            # With the compile options `predict` gets (YNNPACK dots off).
            return compiler.jit(fn)
        if backend == "tensorflow":
            import tensorflow as tf

            # Keras' `predict` runs without XLA where TensorFlow sees no GPU.
            return tf.function(fn, jit_compile=False)
        import torch

        def eager(*args):
            with torch.no_grad():
                return fn(*args)

        return eager

    parts = {
        "projections (4)": (lambda x, w: [ops.matmul(x, w[i])
                                          for i in range(4)], (x, w)),
        "MLP products (2)": (lambda x, w1, w2: ops.matmul(
            ops.matmul(x, w1), w2), (x, w1, w2)),
        "attention core": (lambda q: fused(q, q, q, 0.125), (heads,)),
        # What the layer runs where the fused kernel is not its choice.
        "attention as products": (lambda q: attention.attention_products(
            q, q, q, 0.125, softmax_kernel=backend == "tensorflow"),
            (heads,)),
        "whole layer": (lambda x: layer(x), (x,)),
    }
    out = {"fused": uses_fused}
    for name, (fn, args) in parts.items():
        fn = compile_(fn)
        args = [ops.convert_to_tensor(a) for a in args]
        out[name] = timed(lambda: ops.convert_to_numpy(
            ops.stack([ops.sum(ops.convert_to_tensor(r))
                       for r in keras.tree.flatten(fn(*args))])))
    return out


def reference_parts():
    """`transformers`' ASTLayer (sdpa) and torch's own products."""
    import torch
    import torch.nn.functional as F
    from transformers import ASTConfig
    from transformers.models.audio_spectrogram_transformer import (
        modeling_audio_spectrogram_transformer as modeling,
    )

    config = ASTConfig(attn_implementation="sdpa")
    config._attn_implementation = "sdpa"
    layer = modeling.ASTLayer(config).eval()
    x = torch.randn(BATCH, TOKENS, WIDTH)
    heads = x.reshape(BATCH, TOKENS, HEADS, -1).transpose(1, 2)
    w, w1, w2 = (torch.randn(4, WIDTH, WIDTH), torch.randn(WIDTH, INNER),
                 torch.randn(INNER, WIDTH))
    with torch.no_grad():
        return {
            "projections (4)": timed(lambda: [x @ w[i] for i in range(4)]),
            "MLP products (2)": timed(lambda: (x @ w1) @ w2),
            "attention core": timed(
                lambda: F.scaled_dot_product_attention(heads, heads, heads)),
            "fused": True,
            "whole layer": timed(lambda: layer(x)),
        }


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        role = sys.argv[2]
        result = reference_parts() if role == "reference" else keras_parts()
        print("RESULT " + json.dumps(result))
        return
    results = {}
    for role in ("reference", "jax", "tensorflow", "torch"):
        env = dict(os.environ, KERAS_BACKEND=(
            role if role != "reference" else "torch"),
            TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run([sys.executable, __file__, "--child", role],
                              env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines()
                 if line.startswith("RESULT ")]
        if not lines:
            print(f"{role} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results[role] = json.loads(lines[-1][len("RESULT "):])
    roles = list(results)
    print("| part (ms, 4 clips, one layer) | " + " | ".join(roles) + " |")
    print("|---|" + "---:|" * len(roles))
    for part in PARTS + ("the rest",):
        cells = []
        for role in roles:
            r = results[role]
            attention = r["attention core" if r["fused"]
                          else "attention as products"]
            value = (r["whole layer"] - r[PARTS[0]] - r[PARTS[1]] - attention
                     if part == "the rest" else r.get(part))
            cells.append("—" if value is None else f"{value * 1000:.0f}")
        print(f"| {part} | " + " | ".join(cells) + " |")
    kinds = {role: "fused" if results[role]["fused"] else "products"
             for role in roles}
    print("\nThe layer's attention: "
          + ", ".join(f"{role} {kinds[role]}" for role in roles) + ".")


if __name__ == "__main__":
    main()
