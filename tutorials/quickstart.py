"""Quick start: train, save, reload and serve an AST keyword spotter.

Runs offline in a couple of minutes on a laptop CPU, on any backend
(`KERAS_BACKEND=jax|tensorflow|torch`):
1. synthesises spoken keywords with espeak-ng, several voices and speeds;
2. trains a small Audio Spectrogram Transformer on raw waveforms (features
   are computed inside the model, on the device);
3. measures accuracy on voices the model never heard;
4. saves it as a preset, reloads it, and exports a TensorFlow SavedModel
   that takes raw audio (TensorFlow and JAX backends).

With `--preset DIR` it instead loads a checkpoint directory (Hugging Face
format, e.g. a download of MIT/ast-finetuned-audioset-10-10-0.4593, or one
written by `save_to_preset`) and prints the top classes for a spoken
sentence.

    python tutorials/quickstart.py [--epochs 50] [--output out/quickstart]
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_ast
from keras_ast import speech_synthesis

WORDS = ["yes", "no", "up", "down"]
TRAIN_VOICES = ["en", "en-us", "en+m3", "en+f2", "en-us+m5", "en+f4"]
TEST_VOICES = ["en-gb-x-rp", "en+m7", "en-us+f3"]
SPEEDS = [120, 160, 200]
PITCHES = [35, 65]


def one_second(clip, offset):
    """The clip placed at `offset` samples in a 1 s window."""
    window = np.zeros(16000, np.float32)
    clip = clip[: 16000 - offset]
    window[offset: offset + len(clip)] = clip
    return window


def keyword_set(voices, seed):
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for label, word in enumerate(WORDS):
        for voice in voices:
            for speed in SPEEDS:
                for pitch in PITCHES:
                    clip = speech_synthesis.speak(word, voice, speed, pitch)
                    offset = int(rng.integers(0, max(1, 16000 - len(clip))))
                    wave = one_second(clip, offset)
                    wave += rng.standard_normal(16000).astype("float32") * (
                        0.005
                    )
                    waves.append(wave)
                    labels.append(label)
    return np.stack(waves), np.array(labels)


def show_preset(preset):
    classifier = keras_ast.ASTClassifier.from_preset(preset)
    sentence = speech_synthesis.speak("Hello, this is a test of speech.")
    scores = classifier.predict_scores([sentence], sampling_rate=16000,
                                       verbose=0)[0]
    print(f"Top classes of {preset} for a spoken sentence:")
    for index in np.argsort(scores)[::-1][:5]:
        name = classifier.labels[index] if classifier.labels else index
        print(f"  {scores[index]:.3f}  {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--output", default="out/quickstart")
    parser.add_argument("--preset", help="a checkpoint directory to try")
    args = parser.parse_args()
    print(f"keras_ast {keras_ast.__version__} on "
          f"KERAS_BACKEND={keras.config.backend()}")
    if args.preset:
        show_preset(args.preset)
        return

    start = time.time()
    train_x, train_y = keyword_set(TRAIN_VOICES, seed=0)
    test_x, test_y = keyword_set(TEST_VOICES, seed=1)
    print(f"Synthesised {len(train_x)} training and {len(test_x)} test "
          f"clips of {WORDS} in {time.time() - start:.0f} s")

    keras.utils.set_random_seed(0)
    backbone = keras_ast.ASTBackbone(
        hidden_dim=96, num_layers=3, num_heads=4, intermediate_dim=192,
        max_length=100, frequency_stride=16, time_stride=8,
    )
    converter = keras_ast.ASTAudioConverter(
        max_length=100, mean=-6.845978, std=5.5654526  # Speech Commands
    )
    classifier = keras_ast.ASTClassifier(
        backbone, num_classes=len(WORDS), preprocessor=converter,
        labels=WORDS,
    )
    # The classifier comes compiled (AdamW with gradient clipping); from
    # scratch on a few clips wants a larger step than fine-tuning.
    classifier.compile(learning_rate=5e-4)
    start = time.time()
    classifier.fit(train_x, train_y, batch_size=16, epochs=args.epochs,
                   shuffle=True, verbose=0)
    train_acc = classifier.evaluate(train_x, train_y, verbose=0,
                                    return_dict=True)["accuracy"]
    test_acc = classifier.evaluate(test_x, test_y, verbose=0,
                                   return_dict=True)["accuracy"]
    print(f"Trained {classifier.count_params():,} parameters for "
          f"{args.epochs} epochs in {time.time() - start:.0f} s: accuracy "
          f"{train_acc:.2f} on training voices, {test_acc:.2f} on unheard "
          f"voices {TEST_VOICES} (chance {1 / len(WORDS):.2f})")

    preset = os.path.join(args.output, "preset")
    classifier.save_to_preset(preset)
    reloaded = keras_ast.ASTClassifier.from_preset(preset)
    word = speech_synthesis.speak("down", voice="en-us+f3", speed=150)
    scores = reloaded.predict_scores([word], sampling_rate=16000,
                                     verbose=0)[0]
    best = int(np.argmax(scores))
    print(f"Reloaded from {preset}: a new 'down' is heard as "
          f"'{reloaded.labels[best]}' ({scores[best]:.2f})")

    if keras.config.backend() in ("tensorflow", "jax"):
        import tensorflow as tf

        path = os.path.join(args.output, "saved_model")
        classifier.export(path)
        served = tf.saved_model.load(path)
        logits = served.serve(tf.constant(one_second(word, 0)[None]))
        print(f"Exported a SavedModel to {path}; its 'serve' signature "
              "takes raw 16 kHz audio and says "
              f"'{WORDS[int(np.argmax(logits.numpy()))]}'")


if __name__ == "__main__":
    main()
