#!/usr/bin/env python
"""How close the reference already runs to this CPU's matrix-product rate.

Times `torch.matmul` at the shape of AST's MLP product (4 clips of 1214
tokens, 768 -> 3072) in float32 and in bfloat16, and the reference model's
forward pass (`ASTForAudioClassification`, sdpa, AudioSet geometry, random
weights) in float32 at batch 1 and 4, and in bfloat16 under
`torch.autocast`. The model's rate is its arithmetic (`workload.py`: 261
GFLOP a clip) over its time. If the reference runs at the product rate, no
float32 implementation on the same CPU can be much faster; the only exact
saving left is work not done (keras_ast's last layer computes 2 tokens, not
1214). Prints a Markdown table (its figures are kept in
`benchmarks/results/`). Needs torch and transformers.

    python benchmarks/matmul_rate.py
"""

import platform

from profile_layer import timed
from reference import make_model
from workload import FULL
from workload import model_flops_per_clip


def main():
    import torch

    tokens = 1214  # AudioSet's 1212 patches and 2 tokens
    width, inner = FULL["hidden_dim"], FULL["intermediate_dim"]
    rows = []
    x = torch.randn(4 * tokens, width)
    w = torch.randn(width, inner)
    flops = 2 * x.shape[0] * width * inner
    for dtype in (torch.float32, torch.bfloat16):
        a, b = x.to(dtype), w.to(dtype)
        seconds = timed(lambda: a @ b, iters=10)
        rows.append((f"`torch.matmul` ({4 * tokens} x {width}) @ ({width} x "
                     f"{inner}), {str(dtype)[6:]}", seconds, flops))
    torch.manual_seed(0)
    model = make_model(FULL)
    for batch, half in ((1, False), (4, False), (4, True)):
        features = torch.randn(batch, FULL["max_length"],
                               FULL["num_mel_bins"])

        def forward(features=features, half=half):
            with torch.inference_mode(), torch.autocast(
                    "cpu", dtype=torch.bfloat16, enabled=half):
                model(features)

        rows.append((f"reference forward, batch {batch}, "
                     + ("bfloat16 (autocast)" if half else "float32"),
                     timed(forward, iters=3),
                     batch * model_flops_per_clip(FULL)))
    print(f"{platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}")
    print()
    print("| what | ms per call | GFLOP/s |")
    print("|---|---:|---:|")
    for name, seconds, work in rows:
        print(f"| {name} | {seconds * 1e3:.0f} | {work / seconds / 1e9:.0f} |")


if __name__ == "__main__":
    main()
