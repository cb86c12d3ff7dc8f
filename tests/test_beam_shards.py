"""make_shards_beam (Apache Beam, DirectRunner) against the local writer.

A format/tool test, run under the TensorFlow backend only: the shards do not
depend on the Keras backend. The Beam shards must hold the local writer's
records in its order (only the shard boundaries may differ), the same
`dataset.json` figures and skipped-file report, and read through the
pipelines like the local shards.
"""

import os
import sys

import keras
import numpy as np
import pytest
import soundfile
from test_shards import read_records

from keras_ast.cli import main as cli
from keras_ast.data import pipelines
from keras_ast.data.beam_shards import make_shards_beam
from keras_ast.data.info import read_info
from keras_ast.data.shards import make_shards

pytestmark = [
    pytest.mark.large,
    pytest.mark.skipif(
        keras.config.backend() != "tensorflow",
        reason="a shard-format test: run once, under the TensorFlow backend"),
]

if os.environ.get("CI"):
    import apache_beam  # noqa: F401  CI installs the [beam] extra.
else:
    pytest.importorskip("apache_beam")

RATE = 16000
FORMATS = ["tfrecord", "arrayrecord"]
# Figures of dataset.json that both writers must agree on.
SAME = ["record_format", "sampling_rate", "multi_label", "labels",
        "num_examples", "max_num_samples", "class_counts", "skipped",
        "source", "source_fingerprint", "seed"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Three class folders of short WAVs (one at 22.05 kHz), one corrupt."""
    root = tmp_path_factory.mktemp("beam_source")
    rng = np.random.default_rng(1)
    for i in range(9):
        label = ["bird", "cat", "dog"][i % 3]
        (root / label).mkdir(exist_ok=True)
        rate = 22050 if i == 4 else RATE
        n = int(rate * (0.05 + 0.03 * i))
        wave = (0.3 * rng.uniform(-1, 1, n)).astype(np.float32)
        soundfile.write(root / label / f"clip{i}.wav", wave, rate)
    (root / "cat" / "corrupt.wav").write_bytes(b"RIFF" + rng.bytes(500))
    return str(root)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    """`built(runner, fmt)` -> (output, info), made once each."""
    cache = {}

    def get(runner, fmt):
        if (runner, fmt) not in cache:
            out = str(tmp_path_factory.mktemp(runner) / fmt)
            if runner == "local":
                info = make_shards(source, out, format=fmt,
                                   shard_size_mb=0.02, num_workers=0,
                                   progress=False)
            else:
                info = make_shards_beam(source, out, format=fmt,
                                        shard_size_mb=0.02)
            cache[runner, fmt] = (out, info)
        return cache[runner, fmt]

    return get


@pytest.mark.parametrize("fmt", FORMATS)
def test_beam_shards_equal_the_local_writer(built, fmt):
    local_out, local = built("local", fmt)
    beam_out, beam = built("beam", fmt)
    assert {key: getattr(beam, key) for key in SAME} == {
        key: getattr(local, key) for key in SAME}
    assert [item.path for item in beam.skipped] == ["cat/corrupt.wav"]
    assert beam.skipped[0].reason.startswith("does not decode")
    assert beam.num_examples == 9 and len(beam.shards) >= 3
    # The same records, in the same order once the shards are concatenated.
    local_records = read_records(local_out, local)
    beam_records = read_records(beam_out, beam)
    assert [r[0] for r in beam_records] == [r[0] for r in local_records]
    for (path, audio, labels, _), (_, expected, expected_labels, _) in zip(
            beam_records, local_records):
        np.testing.assert_array_equal(audio, expected, err_msg=path)
        assert labels == expected_labels, path
    # Per-shard figures match the records; hashes match the files.
    for shard in beam.shards:
        held = [r for r in beam_records if r[3] == shard.file]
        assert shard.num_examples == len(held) > 0
        counts = {}
        for r in held:
            label = beam.labels[r[2][0]]
            counts[label] = counts.get(label, 0) + 1
        assert shard.class_counts == counts
    assert read_info(beam_out, verify=True) == beam
    # No listing or report left behind.
    assert sorted(os.listdir(beam_out)) == sorted(
        [s.file for s in beam.shards] + ["dataset.json"])


def _pipeline_clips(out, fmt):
    """Every `(waveform, label)` the pipeline gives, sorted."""
    if fmt == "tfrecord":
        batches = pipelines.tf_dataset(out, 4, clip_seconds=0.5)
        batches = [(x.numpy(), y.numpy()) for x, y in batches]
    else:
        batches = list(pipelines.grain_dataset(out, 4, clip_seconds=0.5))
    clips = [(np.asarray(x).tobytes(), int(y))
             for xs, ys in batches for x, y in zip(xs, ys)]
    return sorted(clips)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_pipelines_read_beam_shards(built, fmt):
    beam_clips = _pipeline_clips(built("beam", fmt)[0], fmt)
    assert len(beam_clips) == 9
    assert beam_clips == _pipeline_clips(built("local", fmt)[0], fmt)


def test_cli_runner_beam(source, built, tmp_path, capsys):
    out = str(tmp_path / "out")
    args = ["make-shards", source, out, "--format", "arrayrecord",
            "--shard-size-mb", "0.02", "--runner", "beam",
            "--beam-options=--runner=DirectRunner --direct_num_workers=1"]
    assert cli.main(args) == 1  # written, but a file was skipped
    printed = capsys.readouterr().out
    assert "9 examples, 3 labels," in printed and "1 skipped" in printed
    info = read_info(out)
    assert info.shards == built("beam", "arrayrecord")[1].shards
    # A finished output: refused, or returned as it is with --resume (the
    # same skipped file: status 1 again, as the local runner gives).
    assert cli.main(args) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli.main(args + ["--resume"]) == 1
    assert "9 examples, 3 labels," in capsys.readouterr().out
    assert read_info(out) == info
    # Beam's parallelism is a Beam option, not --num-workers.
    assert cli.main(args + ["--num-workers", "4"]) == 1
    assert "--beam-options" in capsys.readouterr().err


def test_nothing_decodes(tmp_path):
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "x.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="None of the 1 files"):
        make_shards_beam(str(tmp_path / "src"), str(tmp_path / "out"),
                         format="arrayrecord")


def test_missing_beam_names_the_extra(source, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    with pytest.raises(ImportError, match=r"keras-ast\[beam\]"):
        make_shards_beam(source, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
