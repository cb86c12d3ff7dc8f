#!/usr/bin/env python
"""Memory of one training step with and without `remat=True`.

PyTorch (eager): each setting runs one forward and backward pass in a fresh
process and reports its peak resident memory (`ru_maxrss`), the
activations kept for the backward pass included. JAX: XLA's buffer
assignment for the compiled gradient (`memory_analysis()`), without
running it; on a CPU it shows no saving even for a plain `jax.checkpoint`
(XLA's CPU compiler does not keep the recomputation apart), so the JAX
figure is only meaningful on an accelerator. TensorFlow has no CPU figure.

    KERAS_BACKEND=torch python benchmarks/remat_memory.py --layers 12 --batch 4
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")


def _backbone(remat, args):
    from keras_ast import ASTBackbone

    return ASTBackbone(
        hidden_dim=args.width, num_layers=args.layers,
        num_heads=args.width // 64, intermediate_dim=4 * args.width,
        max_length=args.frames, remat=remat)


def torch_step_peak(remat, args):
    """Peak resident bytes of one step, in a fresh process."""
    import json
    import subprocess
    import sys

    code = (
        "import json, resource, sys, numpy as np, keras\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import remat_memory as m\n"
        "args = m.parse_args(json.loads(sys.argv[2]))\n"
        "backbone = m._backbone(sys.argv[3] == 'True', args)\n"
        "x = np.zeros((args.batch, args.frames, 128), 'float32')\n"
        "loss = keras.ops.mean(keras.ops.square(\n"
        "    backbone.pooled_output(x, training=True)))\n"
        "loss.backward()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    here = os.path.dirname(os.path.abspath(__file__))
    argv = [f"--{k}={v}" for k, v in vars(args).items()]
    done = subprocess.run(
        [sys.executable, "-c", code, here, json.dumps(argv), str(remat)],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, KERAS_BACKEND="torch"))
    return int(done.stdout.split()[-1])


def step_memory(remat, args):
    """Temporary bytes of one compiled loss-and-gradient step (JAX)."""
    import jax
    import keras
    import numpy as np

    backbone = _backbone(remat, args)
    variables = backbone.trainable_variables
    features = np.zeros((args.batch, args.frames, 128), "float32")

    def loss(values):
        with keras.StatelessScope(
                state_mapping=list(zip(variables, values))):
            pooled = backbone.pooled_output(features, training=True)
            return keras.ops.mean(keras.ops.square(pooled))

    compiled = jax.jit(jax.grad(loss)).lower(
        [v.value for v in variables]).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    return parser.parse_args(argv)


def main():
    args = parse_args()
    backend = os.environ["KERAS_BACKEND"]
    if backend == "torch":
        measure, what = torch_step_peak, "peak resident memory of the step"
    elif backend == "jax":
        measure, what = step_memory, "XLA temporary memory"
    else:
        raise SystemExit("Use KERAS_BACKEND=torch or jax.")
    plain, remat = (measure(r, args) for r in (False, True))
    print(f"| step ({backend}) | {what} (MB) |\n|---|---:|\n"
          f"| without remat | {plain / 2**20:.0f} |\n"
          f"| `remat=True` | {remat / 2**20:.0f} |\n\n"
          f"{args.layers} layers, width {args.width}, {args.frames} frames, "
          f"batch {args.batch}: remat keeps {remat / plain:.0%} of the "
          f"memory ({(plain - remat) / 2**20:.0f} MB saved).")


if __name__ == "__main__":
    main()
