#!/usr/bin/env python
"""Memory of one training step with and without `remat=True` (JAX).

XLA reports, for a compiled function, the temporary buffers it needs
(`compiled.memory_analysis().temp_size_in_bytes`): the activations kept
for the backward pass live there. This script compiles the gradient of a
classification loss through `ASTBackbone(remat=False)` and `(remat=True)`
and prints both, without running either, so it is exact and quick. The
other backends give no such figure on a CPU (TensorFlow's and PyTorch's
memory counters are GPU-only).

    KERAS_BACKEND=jax python benchmarks/remat_memory.py [--layers 12]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")


def step_memory(remat, args):
    """Temporary bytes of one compiled loss-and-gradient step."""
    import jax
    import keras
    import numpy as np

    from keras_ast import ASTBackbone

    backbone = ASTBackbone(
        hidden_dim=args.width, num_layers=args.layers,
        num_heads=args.width // 64, intermediate_dim=4 * args.width,
        max_length=args.frames, remat=remat)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    import keras

    if keras.config.backend() != "jax":
        raise SystemExit("XLA's memory analysis needs KERAS_BACKEND=jax.")
    plain, remat = (step_memory(r, args) for r in (False, True))
    print(f"| step | temporary memory (MB) |\n|---|---:|\n"
          f"| without remat | {plain / 2**20:.0f} |\n"
          f"| `remat=True` | {remat / 2**20:.0f} |\n\n"
          f"{args.layers} layers, width {args.width}, {args.frames} frames, "
          f"batch {args.batch}: remat keeps {remat / plain:.0%} of the "
          f"memory ({(plain - remat) / 2**20:.0f} MB saved).")


if __name__ == "__main__":
    main()
