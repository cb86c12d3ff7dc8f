"""make_shards, read_info, sources, decoding and `keras-ast make-shards`.

Small generated audio only; no model. The shards read back (tf.data for
TFRecord, ArrayRecordReader for ArrayRecord) must hold exactly what
`audio_io.load_audio` gives for the sources.
"""

import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import soundfile

from keras_ast.cli import main as cli
from keras_ast.data import audio_io
from keras_ast.data import records
from keras_ast.data import shards
from keras_ast.data.info import DatasetInfo
from keras_ast.data.info import ShardInfo
from keras_ast.data.info import SkippedFile
from keras_ast.data.info import leftovers
from keras_ast.data.info import read_info
from keras_ast.data.shards import make_shards
from keras_ast.utils.files import atomic_path

RATE = 16000
FORMATS = ["tfrecord", "arrayrecord"]


def _write_mp3(path, rng):
    """Writes an MP3 if this libsndfile can; returns why not otherwise."""
    wave = (0.3 * rng.uniform(-1, 1, 8000)).astype(np.float32)
    try:
        soundfile.write(path, wave, RATE, format="MP3")
    except Exception as error:  # libsndfile built without MP3 encoding
        return f"soundfile cannot write MP3 here ({error})"
    return None


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Class folders: WAV, FLAC (stereo, 44.1 kHz), OGG, MP3, a bad file."""
    root = tmp_path_factory.mktemp("shard_source")
    rng = np.random.default_rng(0)
    (root / "dog" / "sub").mkdir(parents=True)
    (root / "cat").mkdir()
    int16 = (rng.standard_normal(8000) * 3000).astype(np.int16)
    soundfile.write(root / "dog" / "a.wav", int16, RATE, subtype="PCM_16")
    stereo = (0.4 * rng.uniform(-1, 1, (13230, 2))).astype(np.float32)
    soundfile.write(root / "dog" / "sub" / "b.flac", stereo, 44100)
    soundfile.write(root / "cat" / "c.ogg",
                    (0.4 * rng.uniform(-1, 1, 8820)).astype(np.float32),
                    22050)
    mp3_missing = _write_mp3(root / "cat" / "d.mp3", rng)
    (root / "cat" / "bad.wav").write_bytes(rng.bytes(2000))
    (root / "dog" / "notes.txt").write_text("not audio")
    soundfile.write(root / "stray.wav", int16[:100], RATE)
    good = {"dog/a.wav": "dog", "dog/sub/b.flac": "dog", "cat/c.ogg": "cat"}
    if mp3_missing is None:
        good["cat/d.mp3"] = "cat"
    return {"root": root, "good": good, "int16": int16, "stereo": stereo,
            "mp3_missing": mp3_missing}


@pytest.fixture(scope="module")
def made(source, tmp_path_factory):
    """`made(fmt)` -> (output, info) for the class-folder source."""
    cache = {}

    def get(fmt):
        if fmt not in cache:
            out = str(tmp_path_factory.mktemp("shards") / fmt)
            info = make_shards(str(source["root"]), out, format=fmt,
                               shard_size_mb=0.05, num_workers=0,
                               progress=False)
            cache[fmt] = (out, info)
        return cache[fmt]

    return get


def read_records(out, info):
    """`[(path, audio, labels, shard file)]` in file order."""
    result = []
    for shard in info.shards:
        file = os.path.join(out, shard.file)
        if info.record_format == "tfrecord":
            import tensorflow as tf

            spec = {
                "audio": tf.io.FixedLenFeature([], tf.string),
                "labels": tf.io.VarLenFeature(tf.int64),
                "num_samples": tf.io.FixedLenFeature([], tf.int64),
                "path": tf.io.FixedLenFeature([], tf.string),
            }
            for raw in tf.data.TFRecordDataset(file):
                example = tf.io.parse_single_example(raw, spec)
                audio = np.frombuffer(example["audio"].numpy(), "<f4")
                assert audio.shape[0] == int(example["num_samples"])
                labels = tf.sparse.to_dense(example["labels"]).numpy()
                result.append((example["path"].numpy().decode(), audio,
                               labels.tolist(), shard.file))
        else:
            from array_record.python.array_record_module import (
                ArrayRecordReader,
            )

            reader = ArrayRecordReader(file)
            try:
                for raw in reader.read_all():
                    audio, labels, path = records.decode(raw)
                    result.append((path, audio, labels.tolist(),
                                   shard.file))
            finally:
                reader.close()
    return result


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --- audio_io -------------------------------------------------------------


def test_decode_formats(source):
    import soxr

    root = source["root"]
    wav = audio_io.load_audio(root / "dog" / "a.wav")
    assert wav.dtype == np.float32 and wav.ndim == 1
    np.testing.assert_array_equal(wav, source["int16"] / np.float32(32768))
    flac = audio_io.load_audio(root / "dog" / "sub" / "b.flac")
    mono = source["stereo"].mean(axis=1, dtype=np.float64)
    expected = soxr.resample(mono.astype(np.float32), 44100, RATE, "HQ")
    np.testing.assert_allclose(flac, expected, atol=1e-4)
    assert flac.dtype == np.float32 and flac.shape == (4800,)
    ogg = audio_io.load_audio(root / "cat" / "c.ogg")
    assert ogg.dtype == np.float32 and ogg.shape == (6400,)
    assert 0.1 < np.abs(ogg).max() < 1.0


def test_decode_mp3(source):
    if source["mp3_missing"]:
        pytest.skip(source["mp3_missing"])
    audio = audio_io.load_audio(source["root"] / "cat" / "d.mp3")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 8000) <= 2304  # encoder delay / padding
    assert 0.05 < np.sqrt(np.mean(audio ** 2)) < 0.5


def test_decode_errors(source, tmp_path):
    bad = source["root"] / "cat" / "bad.wav"
    with pytest.raises(audio_io.AudioDecodeError, match="bad.wav") as info:
        audio_io.load_audio(bad)
    assert isinstance(info.value, ValueError) and info.value.reason
    with pytest.raises(audio_io.AudioDecodeError, match="no such file"):
        audio_io.load_audio(tmp_path / "missing.wav")
    nan = np.zeros(100, np.float32)
    nan[5] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    with pytest.raises(audio_io.AudioDecodeError, match="NaN"):
        audio_io.load_audio(tmp_path / "nan.wav")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), RATE)
    with pytest.raises(audio_io.AudioDecodeError, match="empty"):
        audio_io.load_audio(tmp_path / "empty.wav")


# --- class folders --------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_class_folders(source, made, fmt):
    out, info = made(fmt)
    good = source["good"]
    assert isinstance(info, DatasetInfo) and info.directory == out
    assert info.format_version == 1
    assert info.record_format == fmt and info.sampling_rate == RATE
    assert list(info.labels) == ["cat", "dog"] and not info.multi_label
    assert info.num_examples == len(good)
    expected_counts = {"cat": 0, "dog": 0}
    for label in good.values():
        expected_counts[label] += 1
    assert info.class_counts == expected_counts
    assert [s.path for s in info.skipped] == ["cat/bad.wav",
                                                    "stray.wav"]
    assert info.skipped[0].reason.startswith("does not decode")
    assert "class folder" in info.skipped[1].reason
    assert len(info.shards) >= 2
    suffix = ".tfrecord" if fmt == "tfrecord" else ".array_record"
    for i, shard in enumerate(info.shards):
        assert shard.file == f"shard-{i:05d}{suffix}"
        assert shard.sha256 == sha256(os.path.join(out, shard.file))
    assert sorted(os.listdir(out)) == sorted(
        [s.file for s in info.shards] + ["dataset.json"])
    with open(os.path.join(out, "dataset.json")) as f:
        content = json.load(f)
    assert content["format"] == "keras_ast.shards"
    assert content["format_version"] == 1 and "version" not in content
    assert content == info.to_json()
    assert read_info(out, verify=True) == info

    found = read_records(out, info)
    assert sorted(path for path, *_ in found) == sorted(good)
    per_shard = {}
    for path, audio, labels, file in found:
        expected = audio_io.load_audio(source["root"] / path)
        np.testing.assert_array_equal(audio, expected)
        assert labels == [info.labels.index(good[path])]
        per_shard.setdefault(file, {}).setdefault(good[path], 0)
        per_shard[file][good[path]] += 1
    assert per_shard == {s.file: s.class_counts
                         for s in info.shards}
    assert info.max_num_samples == max(len(a) for _, a, *_ in found)
    # Shards are closed before the clip that would pass the target size.
    for shard in info.shards:
        clips = [a for _, a, _, f in found if f == shard.file]
        assert len(clips) == 1 or sum(a.nbytes for a in clips) <= 50000


def test_parallel_workers_write_the_same_shards(source, made, tmp_path):
    _, serial = made("arrayrecord")
    parallel = make_shards(str(source["root"]), str(tmp_path / "out"),
                           format="arrayrecord", shard_size_mb=0.05,
                           num_workers=2, progress=False)
    assert [s.sha256 for s in parallel.shards] == [
        s.sha256 for s in serial.shards]
    assert parallel.skipped == serial.skipped


def test_seed_none_keeps_the_sorted_order(source, tmp_path):
    out = str(tmp_path / "out")
    info = make_shards(str(source["root"]), out, format="arrayrecord",
                       num_workers=0, progress=False, seed=None)
    assert len(info.shards) == 1 and info.seed is None
    paths = [path for path, *_ in read_records(out, info)]
    assert paths == sorted(source["good"])


def test_no_audio_and_nothing_decodes(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="No audio files"):
        make_shards(str(tmp_path / "empty"), str(tmp_path / "o1"),
                    num_workers=0, progress=False)
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.wav").write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="None of the 1 files"):
        make_shards(str(tmp_path / "bad"), str(tmp_path / "o2"),
                    format="arrayrecord", num_workers=0, progress=False)
    assert not os.path.exists(tmp_path / "o2" / "dataset.json")
    with pytest.raises(ValueError, match="Unknown shard format"):
        make_shards(str(tmp_path / "bad"), str(tmp_path / "o3"),
                    format="parquet")


# --- manifests ------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_csv_manifest_single_label(source, tmp_path, fmt):
    root = source["root"]
    manifest = root / f"single_{fmt}.csv"
    manifest.write_text(
        "path,label\n"
        "dog/a.wav,bark\n"
        f"{root / 'cat' / 'c.ogg'},meow\n"  # absolute paths work too
        "cat/missing.wav,meow\n"
    )
    out = str(tmp_path / "out")
    info = make_shards(str(manifest), out, format=fmt, num_workers=0,
                       progress=False)
    assert list(info.labels) == ["bark", "meow"] and not info.multi_label
    assert info.num_examples == 2
    assert info.class_counts == {"bark": 1, "meow": 1}
    assert info.skipped == (SkippedFile(
        "cat/missing.wav", "does not decode: no such file"),)
    found = {path: (audio, labels)
             for path, audio, labels, _ in read_records(out, info)}
    assert sorted(found) == ["cat/c.ogg", "dog/a.wav"]
    for path, (audio, labels) in found.items():
        np.testing.assert_array_equal(audio, audio_io.load_audio(root / path))
    assert found["dog/a.wav"][1] == [0] and found["cat/c.ogg"][1] == [1]


def test_multi_label_manifests(source, tmp_path):
    root = source["root"]
    csv_manifest = root / "multi.csv"
    csv_manifest.write_text(
        "path,labels\n"
        "dog/a.wav,animal;dog\n"
        "cat/c.ogg,animal; cat\n"
        "dog/sub/b.flac,\n"
    )
    jsonl_manifest = root / "multi.jsonl"
    jsonl_manifest.write_text(
        '{"path": "dog/a.wav", "labels": ["animal", "dog"]}\n'
        "\n"
        '{"path": "cat/c.ogg", "labels": ["animal", "cat"]}\n'
        '{"path": "dog/sub/b.flac", "labels": []}\n'
    )
    infos = []
    for manifest in (csv_manifest, jsonl_manifest):
        out = str(tmp_path / manifest.name)
        info = make_shards(str(manifest), out, format="arrayrecord",
                           num_workers=0, progress=False)
        assert info.multi_label
        assert list(info.labels) == ["animal", "cat", "dog"]
        assert info.class_counts == {"animal": 2, "cat": 1, "dog": 1}
        found = {path: labels
                 for path, _, labels, _ in read_records(out, info)}
        assert found == {"dog/a.wav": [0, 2], "cat/c.ogg": [0, 1],
                         "dog/sub/b.flac": []}
        infos.append(info)
    assert infos[0].source_fingerprint == infos[1].source_fingerprint


def test_jsonl_single_label_and_duplicates(source, tmp_path):
    manifest = source["root"] / "single.jsonl"
    manifest.write_text(
        '{"path": "dog/a.wav", "label": "dog"}\n'
        '{"path": "cat/c.ogg", "label": "cat"}\n'
    )
    info = make_shards(str(manifest), str(tmp_path / "a"),
                       format="arrayrecord", num_workers=0, progress=False)
    assert not info.multi_label and list(info.labels) == ["cat", "dog"]
    # A path listed twice gets both labels: multi-label.
    manifest.write_text(manifest.read_text()
                        + '{"path": "dog/a.wav", "label": "loud"}\n')
    info = make_shards(str(manifest), str(tmp_path / "b"),
                       format="arrayrecord", num_workers=0, progress=False)
    assert info.multi_label and info.num_examples == 2
    assert info.class_counts == {"cat": 1, "dog": 1, "loud": 1}


def test_bad_manifests(tmp_path):
    cases = {
        "no_path.csv": ("file,label\na.wav,x\n", "path"),
        "bad.jsonl": ('{"path": "a.wav", "label": "x"}\n{oops\n', "line 2"),
        # Without labels on every line it is unlabelled (test_unlabelled);
        # on some lines only, refused.
        "some.jsonl": ('{"path": "a.wav", "label": "x"}\n{"path": "b.wav"}\n',
                       "line 2: no `label`"),
        "manifest.txt": ("a.wav x\n", "manifest"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            make_shards(str(tmp_path / name), str(tmp_path / "out"),
                        num_workers=0, progress=False)
    with pytest.raises(FileNotFoundError):
        make_shards(str(tmp_path / "nowhere"), str(tmp_path / "out"))


# --- refusing and resuming ------------------------------------------------


def test_refuse_and_resume(source, tmp_path):
    manifest = tmp_path / "m.jsonl"
    root = source["root"]
    manifest.write_text(
        f'{{"path": "{root / "dog" / "a.wav"}", "label": "dog"}}\n'
        f'{{"path": "{root / "cat" / "c.ogg"}", "label": "cat"}}\n'
    )
    out = str(tmp_path / "out")
    kwargs = dict(format="arrayrecord", num_workers=0, progress=False,
                  shard_size_mb=0.02)
    info = make_shards(str(manifest), out, **kwargs)
    info_path = os.path.join(out, "dataset.json")
    stamp = os.stat(info_path).st_mtime_ns
    with pytest.raises(shards.ShardSetExistsError,
                       match="Pass resume=True to reuse it") as raised:
        make_shards(str(manifest), out, **kwargs)
    assert isinstance(raised.value, FileExistsError)
    assert raised.value.finished and raised.value.output == out
    assert "--resume" in raised.value.describe("--resume")
    # resume: the existing shards, untouched; stale temporaries removed.
    stale = os.path.join(out, ".tmp-shard-00009.array_record-abc")
    open(stale, "wb").close()
    assert make_shards(str(manifest), out, resume=True, **kwargs) == info
    assert os.stat(info_path).st_mtime_ns == stamp
    assert not os.path.exists(stale)
    # Another file list: a clear error, nothing changed.
    manifest.write_text(manifest.read_text().replace('"cat"}', '"kitty"}'))
    with pytest.raises(ValueError, match="another list of source files"):
        make_shards(str(manifest), out, resume=True, **kwargs)
    assert read_info(out) == info

    # An interrupted run: shards without dataset.json.
    os.remove(info_path)
    open(os.path.join(out, "shard-00007.array_record"), "wb").close()
    with pytest.raises(FileNotFoundError, match="resume"):
        read_info(out)
    with pytest.raises(FileExistsError, match="did not finish"):
        make_shards(str(manifest), out, **kwargs)
    fresh = make_shards(str(manifest), out, resume=True, **kwargs)
    assert list(fresh.labels) == ["dog", "kitty"]
    assert sorted(os.listdir(out)) == sorted(
        [s.file for s in fresh.shards] + ["dataset.json"])


def test_old_version_key_is_migrated(made, tmp_path):
    out, info = made("arrayrecord")
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    old = info.to_json()
    old["version"] = old.pop("format_version")
    (copy / "dataset.json").write_text(json.dumps(old))
    assert read_info(copy) == info


def test_dataset_info_round_trip(made, tmp_path):
    out, info = made("tfrecord")
    # The file's content, through DatasetInfo and back, unchanged.
    with open(os.path.join(out, "dataset.json")) as f:
        content = json.load(f)
    again = DatasetInfo.from_json(content, out)
    assert again == info and again.to_json() == content
    # Frozen and typed: no string keys, no assignment, hashable, pickles.
    assert info.labels == ("cat", "dog") and info.num_classes == 2
    assert isinstance(info.shards[0], ShardInfo)
    assert info.shard_paths()[0] == os.path.join(out, info.shards[0].file)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_examples = 1
    with pytest.raises(TypeError):
        info.class_counts["cat"] = 1
    with pytest.raises(TypeError):
        info["labels"]
    assert hash(info) == hash(again)
    assert pickle.loads(pickle.dumps(info)) == info
    # `directory` says where it was read; it is not part of the index.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    moved = read_info(copy)
    assert moved == info and moved.directory == str(copy)
    assert "directory" not in moved.to_json()


def test_an_index_of_an_older_keras_ast_reads(made, tmp_path):
    # Written before `format_version`, per-shard class counts, and the
    # provenance keys: it reads, with the missing parts empty.
    out, info = made("arrayrecord")
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    old = info.to_json()
    old["version"] = old.pop("format_version")
    for key in ("source", "created", "source_fingerprint", "seed"):
        del old[key]
    for shard in old["shards"]:
        del shard["class_counts"]
    del old["class_counts"]["dog"]
    old["class_counts"] = dict(old["class_counts"])
    (copy / "dataset.json").write_text(json.dumps(old))
    read = read_info(copy)
    assert read.num_examples == info.num_examples
    assert read.source is None and read.seed is None
    assert dict(read.class_counts) == {"cat": info.class_counts["cat"],
                                       "dog": 0}
    assert read.shards[0].sha256 == info.shards[0].sha256
    assert dict(read.shards[0].class_counts) == {}


def test_temporary_files_of_the_atomic_writer_are_leftovers(tmp_path):
    # make_shards writes through files.atomic_path; what it leaves while
    # writing is what `leftovers` finds (and --resume deletes).
    out = str(tmp_path)
    with atomic_path(os.path.join(out, "shard-00000.tfrecord")) as temp:
        with atomic_path(os.path.join(out, "dataset.json")) as info_temp:
            names = sorted(os.path.basename(t) for t in (temp, info_temp))
            assert leftovers(out) == ([], names)
    assert leftovers(out) == (["shard-00000.tfrecord"], [])


def test_a_failed_write_leaves_no_temporary_file(source, tmp_path,
                                                  monkeypatch):
    calls = []
    encode = records.encode

    def failing_encode(audio, labels, path=""):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return encode(audio, labels, path)

    monkeypatch.setattr(shards.records, "encode", failing_encode)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        make_shards(str(source["root"]), str(out), format="arrayrecord",
                    shard_size_mb=0.02, num_workers=0, progress=False)
    names = os.listdir(out)
    assert names and not [n for n in names if n.startswith(".tmp-")]
    assert "dataset.json" not in names
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match="did not finish"):
        make_shards(str(source["root"]), str(out), format="arrayrecord",
                    num_workers=0, progress=False)


def test_read_info_errors(made, tmp_path):
    out, info = made("arrayrecord")
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    for change, message in (
            (lambda c: c.update(labels="cat"), "labels"),
            (lambda c: c.update(record_format="csv"), "record_format"),
            (lambda c: c.update(num_examples=1), "num_examples says 1"),
            (lambda c: c.pop("shards"), "lacks shards"),
            (lambda c: c["shards"][0].pop("file"), "shard is not"),
            (lambda c: c.update(skipped=[1]), "skipped")):
        content = info.to_json()
        change(content)
        (bad / "dataset.json").write_text(json.dumps(content))
        with pytest.raises(ValueError, match=message) as raised:
            read_info(bad)
        assert "is not a valid shard index" in str(raised.value)

    with pytest.raises(FileNotFoundError, match="not a shard directory"):
        read_info(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    first = copy / info.shards[0].file
    first.write_bytes(first.read_bytes() + b"x")
    read_info(copy)  # sizes are not checked without verify
    with pytest.raises(ValueError, match="sha256"):
        read_info(copy, verify=True)
    os.remove(first)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_info(copy)
    (copy / "dataset.json").write_text('{"format": "keras_ast.shards"}')
    with pytest.raises(ValueError, match="format_version"):
        read_info(copy)
    (copy / "dataset.json").write_text(
        '{"format": "keras_ast.shards", "format_version": 2}')
    with pytest.raises(ValueError, match="reads version 1"):
        read_info(copy)
    (copy / "dataset.json").write_text("{")
    with pytest.raises(ValueError, match="JSON"):
        read_info(copy / "dataset.json")


# --- command line ---------------------------------------------------------


def test_cli(source, tmp_path, capsys):
    out = str(tmp_path / "out")
    args = ["make-shards", str(source["root"]), out, "--format",
            "arrayrecord", "--shard-size-mb", "0.05", "--num-workers", "0",
            "--no-progress"]
    assert cli.main(args) == 1  # written, but files were skipped
    printed = capsys.readouterr().out
    n = len(source["good"])
    assert f"{n} examples, 2 labels," in printed and "2 skipped" in printed
    assert "skipped cat/bad.wav: does not decode" in printed
    info = read_info(out)
    assert info.num_examples == n and info.record_format == "arrayrecord"

    # The errors speak in flags, not in Python arguments.
    assert cli.main(args) == 1
    error = capsys.readouterr().err
    assert "--resume" in error and "resume=True" not in error
    assert cli.main(args + ["--resume"]) == 1  # the same skipped files
    assert read_info(out) == info
    os.remove(os.path.join(out, "dataset.json"))
    assert cli.main(args) == 1
    error = capsys.readouterr().err
    assert "did not finish" in error
    assert "--resume" in error and "resume=True" not in error
    assert cli.main(args + ["--resume"]) == 1
    assert f"{n} examples" in capsys.readouterr().out  # made again
    with pytest.raises(SystemExit):
        cli.main([])
    with pytest.raises(SystemExit):
        cli.main(["make-shards", str(source["root"]), out, "--format", "x"])


class _FakeTensor:
    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


def fake_tensorflow_io(audio, rate):
    """A stand-in `tensorflow_io` (it does not load with TF >= 2.18)."""
    import importlib.machinery
    import types

    class AudioIOTensor:
        def __init__(self, path):
            if audio is None:
                raise RuntimeError(f"cannot read {path}")
            self.rate = _FakeTensor(np.int64(rate))

        def to_tensor(self):
            return _FakeTensor(audio)

    module = types.ModuleType("tensorflow_io")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorflow_io", None)
    module.audio = types.SimpleNamespace(AudioIOTensor=AudioIOTensor)
    return module


def test_tensorflow_io_is_the_fallback_decoder(tmp_path, monkeypatch):
    path = tmp_path / "odd.m4a"
    path.write_bytes(b"not something libsndfile reads")
    # int16 stereo at 8 kHz: scaled to [-1, 1), averaged, resampled.
    stereo = np.stack([np.full(800, 16384, np.int16),
                       np.full(800, -8192, np.int16)], axis=1)
    monkeypatch.setitem(sys.modules, "tensorflow_io",
                        fake_tensorflow_io(stereo, 8000))
    audio = audio_io.load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (1600,)
    np.testing.assert_allclose(audio[200:-200], 0.125, atol=1e-3)

    # Neither decoder reads it: the error names the file and the reason.
    monkeypatch.setitem(sys.modules, "tensorflow_io",
                        fake_tensorflow_io(None, 8000))
    with pytest.raises(audio_io.AudioDecodeError, match="odd.m4a"):
        audio_io.load_audio(path)
