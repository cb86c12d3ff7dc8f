"""Makes the spoken-keyword data set (Speech Commands style) offline.

A command over `keras_ast.datasets.make_keyword_dataset` (its docstring
says what is written): words spoken by espeak-ng in many voices, speeds
and pitches, with noise, in `train`, `validation` and `test` folders whose
voices differ.

    python tools/make_keyword_dataset.py out/keywords
    keras-ast make-shards out/keywords/train out/shards/train
"""

import argparse
import sys

from keras_ast.datasets import spoken_keywords


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("--words", default=",".join(spoken_keywords.WORDS),
                        help="comma-separated words (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        counts = spoken_keywords.make_keyword_dataset(
            args.output, words=args.words.split(","), workers=args.workers)
    except spoken_keywords.SpeechUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(", ".join(f"{split}: {n} clips" for split, n in counts.items()),
          f"in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
