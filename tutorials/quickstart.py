"""Quick start: train, save, reload and serve an AST keyword spotter.

Runs offline in a couple of minutes on a laptop CPU, on any backend
(`KERAS_BACKEND=jax|tensorflow|torch`):
1. synthesises spoken keywords with espeak-ng, several voices and speeds;
2. trains a small Audio Spectrogram Transformer on raw waveforms (features
   are computed inside the model, on the device);
3. measures accuracy on voices the model never heard;
4. saves it as a preset, reloads it, classifies a file of one spoken word
   and tags a recording of several (`classify`, `tag`; the files are also
   ready for `keras-ast classify`);
5. exports a TensorFlow SavedModel that takes raw audio (TensorFlow and JAX
   backends).

With `--preset DIR` it instead loads a checkpoint directory (Hugging Face
format, e.g. a download of MIT/ast-finetuned-audioset-10-10-0.4593, or one
written by `save_to_preset`) and prints the top classes for a spoken
sentence.

    python tutorials/quickstart.py [--epochs 50] [--output out/quickstart]
"""

import argparse
import os
import time

from keras_ast import import_tensorflow

# TensorFlow (the default backend; Keras' saving and the SavedModel need it
# on any backend) starts without its C++ log lines.
import_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ast  # noqa: E402
from keras_ast.datasets import speak  # noqa: E402

WORDS = ["yes", "no", "up", "down"]
SILENCE = "_silence_"  # background only: lets `tag` say "no word here"
LABELS = WORDS + [SILENCE]
TRAIN_VOICES = ["en", "en-us", "en+m3", "en+f2", "en-us+m5", "en+f4",
                "en-gb-scotland", "en+m1", "en-us+f1", "en-029"]
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
    """Spoken words and background-only clips, clean and noisy alike.

    Half the clips of each class are clean (digital silence around the
    word, or all zeros for `_silence_`), half carry noise, so that the
    model learns the words both ways: clean, as espeak-ng or a quiet
    microphone gives them, and over noise.
    """
    rng = np.random.default_rng(seed)
    waves, labels = [], []

    def noise(level):
        return rng.standard_normal(16000).astype("float32") * level

    for label, word in enumerate(WORDS):
        for voice in voices:
            for speed in SPEEDS:
                for pitch in PITCHES:
                    clip = speak(word, voice, speed, pitch)
                    offset = int(rng.integers(0, max(1, 16000 - len(clip))))
                    wave = one_second(clip, offset)
                    if rng.random() < 0.5:
                        wave += noise(10 ** rng.uniform(-3, -2))
                    waves.append(wave)
                    labels.append(label)
    for _ in range(len(voices) * len(SPEEDS) * len(PITCHES)):
        clean = rng.random() < 0.5
        waves.append(noise(0.0 if clean else 10 ** rng.uniform(-3.3, -1.5)))
        labels.append(len(WORDS))
    return np.stack(waves), np.array(labels)


def clean_words():
    """Each word as `espeak-ng -w word.wav WORD` says it: the default
    voice, no noise, in the model's 1 s input."""
    return np.stack([one_second(speak(word, speed=175), 0)
                     for word in WORDS])


def write_demo_files(output):
    """A spoken word, and words with pauses, as 44.1 kHz stereo WAV files."""
    import soundfile

    rng = np.random.default_rng(7)

    def pause(seconds):
        return rng.standard_normal(int(seconds * 16000)).astype(
            "float32") * 0.003

    def stereo_44k(audio):
        audio = keras_ast.resample(audio, 16000, 44100)
        return np.stack([audio, 0.8 * audio], -1)

    word_path = os.path.join(output, "down.wav")
    word = speak("down", voice="en-us+f3", speed=150)
    # One word in one model input (1 s).
    clip = np.concatenate([pause(0.1), word, pause(0.1)])[:16000]
    soundfile.write(word_path, stereo_44k(clip), 44100)
    parts = [pause(1.0)]
    for text, voice in (("up", "en+m7"), ("no", "en-gb-x-rp"),
                        ("yes", "en-us+f3")):
        parts += [speak(text, voice=voice, speed=140),
                  pause(1.5)]
    recording_path = os.path.join(output, "up_no_yes.wav")
    soundfile.write(recording_path, stereo_44k(np.concatenate(parts)), 44100)
    return word_path, recording_path


def show_preset(preset):
    classifier = keras_ast.ASTClassifier.from_preset(preset)
    sentence = speak("Hello, this is a test of speech.")
    print(f"Top classes of {preset} for a spoken sentence:")
    for label, score in classifier.classify(
            sentence, sampling_rate=16000, top_k=5):
        print(f"  {score:.3f}  {label}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--output", default="out/quickstart")
    parser.add_argument("--preset", help="a checkpoint directory to try")
    args = parser.parse_args(argv)
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
    # The AST authors' Speech Commands augmentation: noise on the features
    # and a roll along time (up to 0.1 s), in training only, so that a few
    # voices generalise to unheard ones.
    augmenter = keras_ast.data.SpecAugment(
        freq_mask_param=0, time_mask_param=0, noise=0.1, max_roll=10, seed=0)
    classifier = keras_ast.ASTClassifier(
        backbone, num_classes=len(LABELS), preprocessor=converter,
        labels=LABELS, augmenter=augmenter,
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
          f"voices {TEST_VOICES} (chance {1 / len(LABELS):.2f})")

    clean_top = classifier.predict_scores(clean_words()).argmax(-1)
    print("Clean words in espeak-ng's default voice heard as: " + ", ".join(
        f"{word} -> {LABELS[top]}" for word, top in zip(WORDS, clean_top)))

    preset = os.path.join(args.output, "preset")
    classifier.save_to_preset(preset)
    reloaded = keras_ast.ASTClassifier.from_preset(preset)
    word_path, recording_path = write_demo_files(args.output)
    print(f"Reloaded from {preset}. classify({word_path!r}, top_k=3):")
    for label, score in reloaded.classify(word_path, top_k=3):
        print(f"  {score:.3f}  {label}")
    timeline = reloaded.tag(recording_path, hop_seconds=0.25, top_k=1,
                            threshold=0.9)
    print(f"tag({recording_path!r}) over {len(timeline.starts)} windows of "
          f"1 s, events:")
    for event in timeline.events:
        if event.label != SILENCE:
            print(f"  {event.onset:5.2f} - {event.offset:5.2f} s  "
                  f"{event.label:5s} {event.score:.2f}")
    word = keras_ast.load_audio(word_path)

    if keras.config.backend() in ("tensorflow", "jax"):
        import tensorflow as tf

        path = os.path.join(args.output, "saved_model")
        classifier.export(path)
        served = tf.saved_model.load(path)
        top = served.signatures["classify"](waveforms=tf.constant(word[None]))
        print(f"Exported a SavedModel to {path}; its 'classify' signature "
              "takes raw 16 kHz audio and says "
              f"{top['labels'][0, 0].numpy().decode()!r} "
              f"({float(top['scores'][0, 0]):.2f})")


if __name__ == "__main__":
    main()
