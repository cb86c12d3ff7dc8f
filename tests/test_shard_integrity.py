"""Damaged shards: refused up front, reported by verify-shards, and counted.

Format and tool tests without a model: they run the same on every backend.
"""

import logging
import os
import shutil

import numpy as np
import pytest
import soundfile

from keras_ast.cli import main as cli
from keras_ast.data import info as index
from keras_ast.data import pipelines
from keras_ast.data import verify_shards
from keras_ast.data.info import DamagedShardError
from keras_ast.data.info import read_info
from keras_ast.data.shards import make_shards

RATE = 16000
FORMATS = ["tfrecord", "arrayrecord"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Shard sets of 24 short clips, 4 per shard, in each format."""
    root = tmp_path_factory.mktemp("integrity")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / "source" / label).mkdir(parents=True)
        for i in range(12):
            wave = 0.1 * rng.standard_normal(1600)
            soundfile.write(root / "source" / label / f"{i}.wav",
                            wave.astype(np.float32), RATE, subtype="FLOAT")
    out = {}
    for fmt in FORMATS:
        out[fmt] = str(root / fmt)
        make_shards(str(root / "source"), out[fmt], format=fmt,
                    shard_size_mb=0.03, num_workers=1, progress=False)
    return out


def copy_with_damage(made, fmt, tmp_path, damage):
    """A copy of a shard set whose second shard is damaged.

    damage: "flip" inverts 500 bytes inside the first record's data (the
    ArrayRecord footer at the end is left whole), "truncate" cuts the shard
    to half, "remove" deletes it. Returns `(directory, shard path, info)`.
    """
    directory = str(tmp_path / f"{fmt}-{damage}")
    shutil.copytree(made[fmt], directory)
    info = read_info(directory)
    assert len(info.shards) >= 3
    assert all(s.num_examples > 1 for s in info.shards)
    shard = os.path.join(directory, info.shards[1].file)
    size = os.path.getsize(shard)
    if damage == "flip":
        with open(shard, "r+b") as f:
            f.seek(1000)
            data = f.read(500)
            f.seek(1000)
            f.write(bytes(b ^ 0xFF for b in data))
    elif damage == "truncate":
        with open(shard, "r+b") as f:
            f.truncate(size // 2)
    else:
        os.remove(shard)
    return directory, shard, info


def open_pipeline(fmt, directory, **kwargs):
    make = pipelines.tf_dataset if fmt == "tfrecord" else (
        pipelines.grain_dataset)
    return make(directory, 4, clip_seconds=0.1, **kwargs)


def count_clips(dataset):
    return sum(int(np.asarray(x).shape[0]) for x, _ in dataset)


# --- refused up front --------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_damaged_shard_is_refused_when_opened(made, tmp_path, fmt,
                                                damage):
    directory, shard, _ = copy_with_damage(made, fmt, tmp_path, damage)
    with pytest.raises(DamagedShardError) as raised:
        open_pipeline(fmt, directory)
    message = str(raised.value)
    assert shard in message and "sha256" in message
    assert "keras-ast make-shards" in message
    assert f"keras-ast verify-shards {directory}" in message
    assert list(raised.value.problems) == [os.path.basename(shard)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_shard_is_refused_when_opened(made, tmp_path, fmt):
    directory, shard, _ = copy_with_damage(made, fmt, tmp_path, "remove")
    with pytest.raises(FileNotFoundError,
                       match=os.path.basename(shard) + ".*missing"):
        open_pipeline(fmt, directory, verify=False)


def test_a_good_set_opens_and_is_hashed_once_per_process(made, tmp_path,
                                                         monkeypatch):
    directory = str(tmp_path / "good")
    shutil.copytree(made["tfrecord"], directory)
    num_shards = len(read_info(directory).shards)
    hashed = []
    real = index.sha256_file
    monkeypatch.setattr(index, "sha256_file",
                        lambda path: hashed.append(path) or real(path))
    assert count_clips(open_pipeline("tfrecord", directory)) == 24
    assert count_clips(open_pipeline("tfrecord", directory)) == 24
    assert len(hashed) == num_shards  # the second open hashed nothing
    # A shard written since (new size and time) is hashed again, and
    # refused.
    shard = os.path.join(directory, read_info(directory).shards[0].file)
    with open(shard, "ab") as f:
        f.write(b"\0")
    with pytest.raises(DamagedShardError, match="shard-00000"):
        open_pipeline("tfrecord", directory)
    assert hashed.count(shard) == 2


# --- verify-shards -----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_shards_reports_each_bad_shard(made, tmp_path, capsys, fmt):
    total = len(read_info(made[fmt]).shards)
    assert verify_shards(made[fmt]) == {}
    assert cli.main(["verify-shards", made[fmt]]) == 0
    assert f"all {total} shards match" in capsys.readouterr().out

    directory, shard, info = copy_with_damage(made, fmt, tmp_path, "flip")
    last = os.path.join(directory, info.shards[-1].file)
    with open(last, "r+b") as f:
        f.truncate(100)
    os.remove(os.path.join(directory, info.shards[0].file))
    bad = verify_shards(directory)
    assert sorted(bad) == sorted(
        s.file for s in (info.shards[0], info.shards[1],
                            info.shards[-1]))
    assert bad[info.shards[0].file] == "missing"
    assert "sha256" in bad[os.path.basename(shard)]
    assert cli.main(["verify-shards", directory]) == 1
    printed = capsys.readouterr()
    for name in bad:
        assert f"BAD {name}" in printed.out
    assert f"3 of {total} shards are bad" in printed.err
    assert "keras-ast make-shards" in printed.err


def test_verify_shards_of_a_folder_without_index(tmp_path, capsys):
    assert cli.main(["verify-shards", str(tmp_path)]) == 1
    assert "not a shard directory" in capsys.readouterr().err


# --- unchecked reads: lost records are counted -------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tfrecord_read_errors_are_counted_and_warned(made, tmp_path, caplog,
                                                     damage):
    directory, shard, info = copy_with_damage(made, "tfrecord", tmp_path,
                                              damage)
    with caplog.at_level(logging.WARNING, logger=pipelines.__name__):
        dataset, stream = open_pipeline("tfrecord", directory,
                                        verify=False, with_info=True)
        delivered = count_clips(dataset)
    skipped = stream.skipped_records
    assert 0 < skipped <= info.shards[1].num_examples
    assert delivered + skipped == 24
    warned = [r.getMessage() for r in caplog.records if shard in
              r.getMessage()]
    assert warned and f"{skipped} of its 4 records" in warned[0]


def test_arrayrecord_read_errors_are_counted_and_warned(made, tmp_path,
                                                        caplog):
    directory, shard, _ = copy_with_damage(made, "arrayrecord", tmp_path,
                                           "flip")
    with caplog.at_level(logging.WARNING, logger=pipelines.__name__):
        dataset, stream = open_pipeline(
            "arrayrecord", directory, verify=False, training=True,
            num_epochs=2, drop_remainder=False, with_info=True)
        delivered = count_clips(dataset)
    skipped = stream.skipped_records
    assert skipped > 0 and delivered + skipped == 48  # two passes
    reasons = stream.skip_count.reasons()
    assert len(reasons) == skipped
    assert all(shard in line for line in reasons)
    warned = [r.getMessage() for r in caplog.records]
    assert any(shard in line and "cannot be read" in line
               for line in warned)


def test_arrayrecord_read_errors_in_worker_processes_are_counted(
        made, tmp_path):
    directory, _, _ = copy_with_damage(made, "arrayrecord", tmp_path, "flip")
    unchecked = open_pipeline("arrayrecord", directory, verify=False)
    alone = count_clips(unchecked)
    workers, stream = open_pipeline("arrayrecord", directory, verify=False,
                                    num_workers=1, with_info=True)
    assert count_clips(workers) == alone
    assert stream.skipped_records == 24 - alone > 0


def test_an_arrayrecord_shard_that_does_not_open_is_named(made, tmp_path):
    # Cut short, its footer is gone: not even the unchecked reader opens it.
    directory, shard, _ = copy_with_damage(made, "arrayrecord", tmp_path,
                                           "truncate")
    with pytest.raises(DamagedShardError, match="does not open") as raised:
        open_pipeline("arrayrecord", directory, verify=False)
    assert list(raised.value.problems) == [os.path.basename(shard)]
