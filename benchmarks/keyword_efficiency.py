#!/usr/bin/env python
"""What the efficiency features cost in accuracy, on the spoken keywords.

On the espeak-ng keyword set (`keras_ast.datasets`; test voices never
heard in training), on one backend (JAX by default: `KERAS_BACKEND`):

1. patchout: a 3-layer model (the tutorial's) trained from scratch with
   and without patchout at equal epochs; PaSST's AudioSet setting (40 of
   101 time columns, 4 of 12 frequency rows) scaled to the 1 s grid (9
   time columns, 8 frequency rows: 4 and 3), and a milder one (3 and 2);
   mean accuracy over `--seeds` runs with its standard error, and
   seconds per epoch; with `--patchout-start pretrained`, PaSST's regime
   instead: the model trained on the first words without patchout, then
   fine-tuned to the other words with and without it;
2. token pruning: a deeper model (8 layers), trained once, evaluated at
   `token_keep` 1.0, 0.7 and 0.5;
3. int8 weights (`quantize("int8")`) on that model: accuracy and the
   largest difference of its softmax scores from float32's on the test
   clips;
4. adapting that model to other words: full fine-tuning, LoRA (rank 8)
   and a frozen backbone (only the head trains): trainable weights, time
   per training step, accuracy.

The seconds per epoch leave out each run's first epoch (it compiles).
Accuracy is `keras_ast.evaluate`'s on the test split. Results go to a
results file (`--output`; by default
`benchmarks/results/<date>-keyword-efficiency.json`, a temporary file with
`--quick`) and are printed as Markdown (render.py).

    python benchmarks/keyword_efficiency.py            # full run
    python benchmarks/keyword_efficiency.py --quick    # smoke test
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the modules beside this file
from machine import machine_info  # noqa: E402
from measure import log, results_path, write_results  # noqa: E402
from render import render  # noqa: E402

BASE_WORDS = ["yes", "no", "up", "down"]
NEW_WORDS = ["left", "right", "on", "off"]
# PaSST's AudioSet patchout (40 of 101 time columns, 4 of 12 frequency
# rows: 40 % of the tokens stay) scaled to the keyword model's 8 x 9 grid,
# and a milder one (half the tokens stay).
PATCHOUT = {"time 4, frequency 3": {"patchout_time": 4,
                                    "patchout_frequency": 3},
            "time 3, frequency 2": {"patchout_time": 3,
                                    "patchout_frequency": 2}}
SHALLOW = dict(hidden_dim=96, num_layers=3, num_heads=4,
               intermediate_dim=192)
DEEP = dict(SHALLOW, num_layers=8)
GRID = dict(max_length=100, frequency_stride=16, time_stride=10)
TRAINING = dict(learning_rate=1e-3, mixup=False, spec_augment=False,
                overwrite=True, verbose=0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="two words, two epochs: a smoke test")
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs of every training run")
    parser.add_argument("--work", default=None,
                        help="folder for audio, shards and runs (default: "
                        "a temporary one)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="patchout table: runs of each setting, seeds "
                        "0, 1, ... (the mean and each run are shown)")
    parser.add_argument("--patchout-only", action="store_true",
                        help="the patchout table alone")
    parser.add_argument("--patchout-start", default="scratch",
                        choices=("scratch", "pretrained"),
                        help="patchout table: train the 3-layer model from "
                        "random weights on the first words, or train it "
                        "there without patchout, then fine-tune it to the "
                        "other words with and without (PaSST's regime)")
    parser.add_argument("--output", default=None, help="results file")
    return parser.parse_args(argv)


class EpochTimes:
    """Seconds of each epoch, kept by a Keras callback."""

    def __init__(self):
        import keras

        times = self.times = []
        steps = self.steps = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()
                steps.append(0)

            def on_train_batch_end(self, batch, logs=None):
                steps[-1] += 1

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.start)

        self.callback = Timer()

    def per_epoch(self):
        """The median epoch, the first (compiling) one left out."""
        timed = self.times[1:] or self.times
        return statistics.median(timed)

    def per_step(self):
        """Seconds per training step of the median epoch (validation
        included, as in a run)."""
        return self.per_epoch() / max(self.steps[-1], 1)


def make_shards_for(work, words, quick):
    """Synthesises `words` and shards each split; returns the folders."""
    from keras_ast.data import make_shards
    from keras_ast.datasets import make_keyword_dataset

    audio = work / ("audio_" + "_".join(words))
    # The tutorial's voices: each in one split, the test ones unheard.
    voices = {"train": ["en", "en-us", "en+m3", "en+f2", "en-us+m5",
                        "en+f4"],
              "validation": ["en+m7", "en-us+f4"],
              "test": ["en-gb-x-rp", "en-us+f3", "en+m4"]}
    if quick:
        voices = {"train": ["en", "en-us"], "validation": ["en+m7"],
                  "test": ["en-gb-x-rp"]}
    make_keyword_dataset(str(audio), words=words, voices=voices,
                         speeds=[120, 160, 200], pitches=[35, 65],
                         snr_db=(20.0, 40.0))
    shards = {"audio": str(audio)}
    for split in ("train", "validation", "test"):
        shards[split] = str(work / "shards" / "_".join(words) / split)
        make_shards(str(audio / split), shards[split], num_workers=1,
                    progress=False)
    return shards


def run(preset, shards, output, epochs, **settings):
    """Trains; returns the classifier, epoch times and test accuracy."""
    import keras_ast

    timer = EpochTimes()
    classifier = keras_ast.train(
        preset, shards["train"], str(output),
        validation=shards["validation"], epochs=epochs,
        callbacks=[timer.callback], **TRAINING, **settings)
    accuracy = keras_ast.evaluate(classifier, shards["test"])["accuracy"]
    return classifier, timer, accuracy


def weight_count(weights):
    return int(sum(int(w.numpy().size) if hasattr(w, "numpy")
                   else int(w.size) for w in weights))


def patchout_table(work, shards, epochs, seeds, log, preset=None,
                   start="3 layers from scratch"):
    """Accuracy and epoch time with and without patchout, over `seeds`
    runs from `preset` (None: a random 3-layer backbone)."""
    import keras_ast

    if preset is None:
        preset = str(work / "shallow")
        keras_ast.ASTBackbone(**SHALLOW, **GRID).save_to_preset(preset)
    rows = []
    for name, settings in (("none", {}), *PATCHOUT.items()):
        accuracies, epoch_times = [], []
        for seed in range(seeds):
            _, timer, accuracy = run(
                preset, shards, work / f"runs/patchout_{len(rows)}",
                epochs, seed=seed, **settings)
            accuracies.append(round(accuracy, 3))
            epoch_times.append(timer.per_epoch())
            log(f"patchout {name}, seed {seed}: accuracy {accuracy:.3f}, "
                f"{timer.per_epoch():.2f} s per epoch")
        error = (statistics.stdev(accuracies) / len(accuracies) ** 0.5
                 if len(accuracies) > 1 else None)
        rows.append([name, round(statistics.mean(accuracies), 3),
                     None if error is None else round(error, 3),
                     accuracies, round(statistics.median(epoch_times), 2)])
    return {"title": f"Patchout, {start}, {epochs} epochs, "
                     f"{seeds} seed{'s' if seeds > 1 else ''}",
            "columns": ["patchout", "mean test accuracy",
                        "standard error", "each seed", "s per epoch"],
            "rows": rows}


def patchout_after_training(work, base, base_shards, new, epochs, args,
                            log):
    """PaSST's regime: the 3-layer model trained on the first words
    without patchout, then fine-tuned to the other words with and
    without."""
    import keras_ast

    scratch = str(work / "shallow")
    keras_ast.ASTBackbone(**SHALLOW, **GRID).save_to_preset(scratch)
    _, _, accuracy = run(scratch, base_shards, work / "runs/shallow_base",
                         epochs)
    log(f"the model on the first words: accuracy {accuracy:.3f}")
    new_shards = make_shards_for(work, new, args.quick)
    return patchout_table(
        work, new_shards, epochs, args.seeds, log,
        preset=str(work / "runs/shallow_base/preset"),
        start=f"3 layers trained on {len(base)} words, fine-tuned to "
              f"{len(new)} others")


def token_keep_table(work, shards, epochs, log):
    import keras_ast

    preset = str(work / "deep")
    keras_ast.ASTBackbone(**DEEP, **GRID).save_to_preset(preset)
    classifier, _, _ = run(preset, shards, work / "runs/deep", epochs)
    rows = []
    for keep in (1.0, 0.7, 0.5):
        classifier.token_keep = keep
        accuracy = keras_ast.evaluate(classifier, shards["test"])["accuracy"]
        log(f"token_keep {keep}: accuracy {accuracy:.3f}")
        rows.append([keep, round(accuracy, 3)])
    classifier.token_keep = 1.0
    return classifier, {"title": f"Token pruning, 8 layers, {epochs} "
                                 "epochs",
                        "columns": ["token_keep", "test accuracy"],
                        "rows": rows}


def int8_table(classifier, work, shards, log):
    """The 8-layer model in float32 and int8 on the test clips."""
    import numpy as np

    import keras_ast

    from keras_ast.inference.files import list_audio

    test_files = list_audio([os.path.join(shards["audio"], "test")])
    clips = [keras_ast.load_audio(path, sampling_rate=16000)
             for path in test_files]
    rows, scores = [], []
    for name in ("float32", "int8"):
        if name == "int8":
            classifier.quantize("int8")
        scores.append(classifier.predict_scores(clips, verbose=0))
        accuracy = keras_ast.evaluate(classifier, shards["test"])["accuracy"]
        preset = work / f"preset_{name}"
        classifier.save_to_preset(str(preset))
        size = sum(f.stat().st_size for f in preset.iterdir()) / 2**20
        rows.append([name, round(accuracy, 3), round(size, 2)])
    difference = float(np.max(np.abs(scores[1] - scores[0])))
    log(f"int8: accuracy {rows[1][1]} (float32 {rows[0][1]}), largest "
        f"score difference {difference:.4f}")
    rows[1].append(round(difference, 4))
    rows[0].append("—")
    return {"title": "int8 weights, the 8-layer model",
            "columns": ["weights", "test accuracy", "preset MB",
                        "largest score difference"], "rows": rows}


def transfer_table(work, shards, epochs, log):
    pretrained = str(work / "runs/deep/preset")
    rows = []
    for name, settings in (("full fine-tuning", {}),
                           ("LoRA rank 8", {"lora_rank": 8}),
                           ("frozen backbone", {"freeze_backbone": True})):
        classifier, timer, accuracy = run(
            pretrained, shards, work / f"runs/new_{len(rows)}", epochs,
            **settings)
        trainable = weight_count(classifier.trainable_weights)
        total = weight_count(classifier.weights)
        step = timer.per_step()
        log(f"{name}: {trainable} of {total} weights train, "
            f"{1000 * step:.0f} ms per step, accuracy {accuracy:.3f}")
        rows.append([name, trainable, total, round(1000 * step),
                     round(accuracy, 3)])
    return {"title": f"From the 8-layer model to {len(NEW_WORDS)} other "
                     f"words, {epochs} epochs",
            "columns": ["training", "trainable weights", "all weights",
                        "ms per step", "test accuracy"],
            "rows": rows}


def main(argv=None):
    args = parse_args(argv)
    import keras
    from keras_ast import import_tensorflow

    import_tensorflow()
    machine = machine_info()
    epochs = 2 if args.quick else args.epochs
    base = BASE_WORDS[:2] if args.quick else BASE_WORDS
    new = NEW_WORDS[:2] if args.quick else NEW_WORDS
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        base_shards = make_shards_for(work, base, args.quick)
        if args.patchout_start == "scratch":
            tables = [patchout_table(work, base_shards, epochs, args.seeds,
                                     log)]
        else:
            tables = [patchout_after_training(work, base, base_shards, new,
                                              epochs, args, log)]
        if not args.patchout_only:
            deep, table = token_keep_table(work, base_shards, epochs, log)
            tables.append(table)
            new_shards = make_shards_for(work, new, args.quick)
            tables.append(transfer_table(work, new_shards, epochs, log))
            tables.append(int8_table(deep, work, base_shards, log))
    command = "python benchmarks/keyword_efficiency.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    results = {
        "title": "Efficiency features on the spoken keywords (issue 26)",
        "script": "benchmarks/keyword_efficiency.py",
        "command": f"KERAS_BACKEND={keras.config.backend()} {command}",
        "date": machine["date"], "commit": machine["commit"],
        "machine": machine, "backends": [keras.config.backend()],
        "method": [__doc__.split("\n\n")[1]],
        "tables": tables, "notes": [],
    }
    path = args.output or results_path("keyword-efficiency",
                                       machine["date"], args.quick)
    write_results(path, results, log)
    print(render(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    sys.exit(main())
