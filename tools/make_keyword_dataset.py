"""Makes a small spoken-keyword data set (Speech Commands style) offline.

Words are spoken by espeak-ng in many voices, speeds and pitches, placed at
a random offset in a 1 s window, and mixed with noise at a random SNR.
Voices are split between `train`, `validation` and `test`, so the test
split holds only voices the model never heard:

    OUTPUT/{train,validation,test}/<word>/<voice>_<speed>_<pitch>.wav

    python tools/make_keyword_dataset.py out/keywords
    keras-ast make-shards out/keywords/train out/shards/train
"""

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_ast.datasets import spoken_keywords as speech_synthesis
from keras_ast.utils.files import atomic_path

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop",
         "go"]
# espeak-ng voices and variants: accents and male / female timbres.
SPLITS = {
    "train": ["en", "en-us", "en+m3", "en+f2", "en-us+m5", "en+f4",
              "en-gb-scotland", "en-us+f2", "en+m1", "en-029"],
    "validation": ["en+m7", "en-us+f4"],
    "test": ["en-gb-x-rp", "en-us+f3", "en+m4"],
}
SPEEDS = [110, 140, 170, 200]
PITCHES = [30, 50, 70]
RATE = 16000


def render(word, voice, speed, pitch, seed):
    """One 1 s clip: the word at a random offset, with noise."""
    rng = np.random.default_rng(seed)
    speech = speech_synthesis.speak(word, voice=voice, speed=speed,
                                    pitch=pitch)[:RATE]
    clip = np.zeros(RATE, np.float32)
    offset = int(rng.integers(0, RATE - len(speech) + 1))
    clip[offset:offset + len(speech)] = speech
    power = float(np.mean(speech ** 2)) + 1e-12
    snr_db = rng.uniform(10.0, 40.0)
    noise = rng.standard_normal(RATE) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(clip + noise, -1.0, 1.0).astype(np.float32)


def make(output, words=WORDS, splits=SPLITS, speeds=SPEEDS, pitches=PITCHES,
         workers=8):
    """Writes the data set; returns the number of clips per split."""
    import soundfile

    jobs = []
    for split, voices in splits.items():
        for word in words:
            os.makedirs(os.path.join(output, split, word), exist_ok=True)
            for voice in voices:
                for speed in speeds:
                    for pitch in pitches:
                        name = f"{voice}_{speed}_{pitch}.wav".replace("+", "-")
                        jobs.append((split, word, voice, speed, pitch, name))

    def run(index_job):
        index, (split, word, voice, speed, pitch, name) = index_job
        clip = render(word, voice, speed, pitch, seed=index)
        path = os.path.join(output, split, word, name)
        with atomic_path(path) as staging:  # never a half-written file
            soundfile.write(staging, clip, RATE, subtype="PCM_16",
                            format="WAV")
        return split

    counts = {split: 0 for split in splits}
    with ThreadPoolExecutor(workers) as pool:
        for split in pool.map(run, enumerate(jobs)):
            counts[split] += 1
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("--words", default=",".join(WORDS),
                        help="comma-separated words")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    if not speech_synthesis.available():
        print("error: espeak-ng and sox are needed "
              "(apt-get install espeak-ng sox)", file=sys.stderr)
        return 2
    counts = make(args.output, words=args.words.split(","),
                  workers=args.workers)
    print(", ".join(f"{split}: {n} clips" for split, n in counts.items()),
          f"in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
