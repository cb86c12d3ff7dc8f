#!/usr/bin/env python
"""How close the reference already runs to this CPU's matrix-product rate.

Times `torch.matmul` at the shape of AST's MLP product (4 clips of 1214
tokens, 768 -> 3072) in float32 and in bfloat16, and the reference model's
forward pass (`ASTForAudioClassification`, sdpa, AudioSet geometry, random
weights) in float32 at batch 1 and 4, and in bfloat16 under
`torch.autocast`. The model's rate is its arithmetic (261 GFLOP a clip)
over its time. If the reference runs at the product rate, no float32
implementation on the same CPU can be much faster; the only exact saving
left is work not done (keras_ast's last layer computes 2 tokens, not 1214:
about 7% of the model). Prints a Markdown table for README.md ("Where the
time goes"). Needs torch and transformers.

    python benchmarks/matmul_rate.py
"""

import platform
import statistics
import time

TOKENS, WIDTH, INNER, LAYERS = 1214, 768, 3072, 12


def model_flops_per_clip():
    """Multiply-adds x 2 of the encoder: projections, MLP, attention."""
    linear = 12 * TOKENS * WIDTH * WIDTH
    attention = 2 * TOKENS * TOKENS * WIDTH
    return 2 * LAYERS * (linear + attention)


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


def main():
    import torch
    import transformers

    rows = []
    x = torch.randn(4 * TOKENS, WIDTH)
    w = torch.randn(WIDTH, INNER)
    flops = 2 * x.shape[0] * WIDTH * INNER
    for dtype in (torch.float32, torch.bfloat16):
        a, b = x.to(dtype), w.to(dtype)
        seconds = timed(lambda: a @ b, iters=10)
        rows.append((f"`torch.matmul` ({4 * TOKENS} x {WIDTH}) @ ({WIDTH} x "
                     f"{INNER}), {str(dtype)[6:]}", seconds, flops))
    torch.manual_seed(0)
    model = transformers.AutoModelForAudioClassification.from_config(
        transformers.ASTConfig(num_labels=527),
        attn_implementation="sdpa").eval()
    for batch, half in ((1, False), (4, False), (4, True)):
        features = torch.randn(batch, 1024, 128)

        def forward(features=features, half=half):
            with torch.inference_mode(), torch.autocast(
                    "cpu", dtype=torch.bfloat16, enabled=half):
                model(features)

        rows.append((f"reference forward, batch {batch}, "
                     + ("bfloat16 (autocast)" if half else "float32"),
                     timed(forward, iters=3),
                     batch * model_flops_per_clip()))
    print(f"{platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print()
    print("| what | ms per call | GFLOP/s |")
    print("|---|---:|---:|")
    for name, seconds, work in rows:
        print(f"| {name} | {seconds * 1e3:.0f} | {work / seconds / 1e9:.0f} |")


if __name__ == "__main__":
    main()
