"""What Keras' JAX `predict` loses without the YNNPACK compile option.

`keras_ast.ops.compiler.compiler_options` turns YNNPACK's dot kernels off
for float32 compiles on x86-64 CPUs. The package applies it only to the
functions it compiles itself; Keras compiles `predict`'s step with no
public argument for compile options, so the step runs with XLA's
defaults unless the user sets the option in `XLA_FLAGS`. This script
times float32 `predict` of a 12-layer AST (AudioSet geometry: 1024
frames, 1214 tokens; width 192 by default, 768 as the checkpoints) in
child processes that take turns, with and without
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`, and prints the
median call time of each, their ratio (overall and round by round) and
the largest logit difference.

    python benchmarks/compile_options.py --rounds 5 --calls 3
    python benchmarks/compile_options.py --rounds 3 --calls 2 --width 768
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FLAG = "--xla_cpu_experimental_ynn_fusion_type="
MAX_LENGTH = 1024


def child(calls, batch, width, logits_path):
    """Times `calls` predicts after one that compiles; prints JSON."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    import numpy as np

    from keras_ast import ASTBackbone
    from keras_ast import ASTClassifier

    keras.utils.set_random_seed(0)
    backbone = ASTBackbone(hidden_dim=width, num_layers=12,
                           num_heads=width // 64, intermediate_dim=4 * width,
                           max_length=MAX_LENGTH)
    classifier = ASTClassifier(backbone, num_classes=527, multi_label=True)
    features = np.random.default_rng(0).standard_normal(
        (batch, MAX_LENGTH, 128)).astype("float32")
    logits = classifier.predict(features, batch_size=batch, verbose=0)
    np.save(logits_path, logits)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        classifier.predict(features, batch_size=batch, verbose=0)
        times.append(time.perf_counter() - start)
    print(json.dumps(times))


def run_child(with_flag, calls, batch, width, logits_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    flags = env.get("XLA_FLAGS", "").replace(FLAG, "").strip()
    env["XLA_FLAGS"] = f"{flags} {FLAG}".strip() if with_flag else flags
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--calls", str(calls),
         "--batch", str(batch), "--width", str(width),
         "--logits", logits_path],
        env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=192,
                        help="hidden size (768: the AudioSet checkpoints)")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--logits")
    args = parser.parse_args()
    if args.child:
        return child(args.calls, args.batch, args.width, args.logits)
    import numpy as np

    medians = {"default": [], "option": []}
    scratch = tempfile.mkdtemp()
    paths = {name: os.path.join(scratch, f"{name}.npy") for name in medians}
    for index in range(args.rounds):
        order = ["default", "option"] if index % 2 == 0 else [
            "option", "default"]
        for name in order:
            times = run_child(name == "option", args.calls, args.batch,
                              args.width, paths[name])
            medians[name].append(statistics.median(times))
            print(f"round {index + 1} {name}: "
                  + ", ".join(f"{t:.3f}" for t in times), flush=True)
    default = statistics.median(medians["default"])
    option = statistics.median(medians["option"])
    ratios = [d / o for d, o in zip(medians["default"], medians["option"])]
    print("default / option by round: "
          + ", ".join(f"{r:.2f}" for r in ratios))
    difference = np.abs(np.load(paths["default"])
                        - np.load(paths["option"])).max()
    print(f"width {args.width}, predict on {args.batch} clips, median of "
          "round medians: "
          f"default {default:.3f} s, with {FLAG} {option:.3f} s, "
          f"default / option {default / option:.2f}; logits differ by "
          f"{difference:.1e}")


if __name__ == "__main__":
    main()
