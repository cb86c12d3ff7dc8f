"""`keras-ast presets`: the built-in presets as a table or JSON."""


def add_arguments(parser):
    """Adds `keras-ast presets`' arguments to an argparse parser."""
    parser.add_argument("--format", choices=["table", "json"],
                        default="table",
                        help="output format (default: table)")


def _score_text(score):
    """`0.4593 mAP (AudioSet)`, `98.1% accuracy (Speech Commands V2)`."""
    value = score["value"]
    if score["metric"] == "accuracy":
        text = f"{value * 100:g}%"
    else:  # at least the three decimals the authors give: 0.450
        text = f"{value:.3f}" if round(value, 3) == value else f"{value:g}"
    return f"{text} {score['metric']} ({score['dataset']})"


def run(args):
    """Prints the built-in presets; returns the exit status (0)."""
    # Standard library and numpy only: no Keras, no backend.
    from keras_ast.data.audio_io import SAMPLING_RATE
    from keras_ast.ops.kaldi import FRAME_SHIFT
    from keras_ast.presets.builtin import BUILTIN_PRESETS

    rows = [
        dict(name=name, **preset, sampling_rate=SAMPLING_RATE,
             input_seconds=preset["max_length"] * FRAME_SHIFT
             / SAMPLING_RATE)
        for name, preset in BUILTIN_PRESETS.items()
    ]
    if args.format == "json":
        import json

        print(json.dumps(rows, indent=2))
        return 0
    table = [("PRESET", "HUB REPOSITORY", "INPUT", "LABELS", "REPORTED")]
    table += [
        (row["name"], row["hf_repo"],
         f"{row['input_seconds']:g} s, {row['sampling_rate'] // 1000} kHz",
         str(row["num_classes"]), _score_text(row["score"]))
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for line in table:
        print("  ".join([cell.ljust(width) for cell, width
                         in zip(line, widths)] + [line[-1]]))
    return 0
