"""tf.data and Grain pipelines from shards into `fit`, on every backend."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import soundfile

from conftest import tiny_backbone
from keras_ast import ASTClassifier
from keras_ast.data import pipelines
from keras_ast.data.info import PipelineInfo
from keras_ast.data.info import read_info
from keras_ast.data.shards import make_shards

RATE = 16000


def write_tone_source(root, multi_label=False):
    """Two classes of tones of several lengths, as class folders."""
    rng = np.random.default_rng(0)
    lengths = {}
    for label, freq in (("high", 3000.0), ("low", 300.0)):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(6):
            n = int(RATE * rng.uniform(0.3, 1.2))
            t = np.arange(n) / RATE
            wave = 0.4 * np.sin(2 * np.pi * freq * t) + 0.01 * (
                rng.standard_normal(n))
            path = folder / f"{label}_{i}.wav"
            soundfile.write(path, wave.astype(np.float32), RATE,
                            subtype="FLOAT")
            lengths[str(path)] = n
    return lengths


@pytest.fixture(scope="module")
def shard_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    source = root / "source"
    write_tone_source(source)
    out = {}
    for fmt in ("tfrecord", "arrayrecord"):
        out[fmt] = str(root / fmt)
        make_shards(str(source), out[fmt], format=fmt, shard_size_mb=0.05,
                    num_workers=1, progress=False)
    return out


def collect(dataset):
    waves, labels = [], []
    for x, y in dataset:
        waves.append(np.asarray(x))
        labels.append(np.asarray(y))
    return np.concatenate(waves), np.concatenate(labels)


@pytest.mark.parametrize("fmt", ["tfrecord", "arrayrecord"])
def test_eval_pipeline_yields_every_clip_once(shard_dirs, fmt):
    make = (pipelines.tf_dataset if fmt == "tfrecord"
            else pipelines.grain_dataset)
    dataset = make(shard_dirs[fmt], batch_size=5, clip_seconds=1.0)
    waves, labels = collect(dataset)
    assert waves.shape == (12, RATE) and waves.dtype == np.float32
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6
    # Clips are the sources, cut or zero-padded to one second.
    assert np.all(np.abs(waves).max(axis=1) > 0.3)


@pytest.mark.parametrize("fmt", ["tfrecord", "arrayrecord"])
def test_process_reads_its_part(shard_dirs, fmt):
    make = (pipelines.tf_dataset if fmt == "tfrecord"
            else pipelines.grain_dataset)
    # Without jax.distributed, a process reads everything.
    assert pipelines.process_part() == (0, 1)
    # Process 1 of 2 reads its part, process 0 the rest.
    parts = [collect(make(shard_dirs[fmt], batch_size=1, clip_seconds=1.0,
                          part=(index, 2)))[1] for index in (0, 1)]
    every = collect(make(shard_dirs[fmt], batch_size=1, clip_seconds=1.0,
                         part=(0, 1)))[1]
    assert 0 < len(parts[1]) < 12
    assert sorted(np.concatenate(parts).tolist()) == sorted(every.tolist())
    assert sorted(every.tolist()) == [0] * 6 + [1] * 6
    with pytest.raises(ValueError, match=r"part=\(2, 2\)"):
        make(shard_dirs[fmt], batch_size=1, part=(2, 2))


@pytest.mark.parametrize("fmt", ["tfrecord", "arrayrecord"])
def test_training_pipeline_shuffles_and_crops_with_seed(shard_dirs, fmt):
    make = (pipelines.tf_dataset if fmt == "tfrecord"
            else pipelines.grain_dataset)
    first = collect(make(shard_dirs[fmt], 4, training=True,
                         clip_seconds=0.25, seed=1))
    again = collect(make(shard_dirs[fmt], 4, training=True,
                         clip_seconds=0.25, seed=1))
    other = collect(make(shard_dirs[fmt], 4, training=True,
                         clip_seconds=0.25, seed=2))
    assert first[0].shape == (12, 4000)  # 3 full batches
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])


def test_grain_shuffles_every_epoch_anew(shard_dirs):
    # Clips as long as the longest: nothing is cropped, only the order
    # changes between the two passes.
    dataset = pipelines.grain_dataset(shard_dirs["arrayrecord"], 6,
                                      training=True, num_epochs=2,
                                      clip_seconds=1.2)
    waves, _ = collect(dataset)
    first, second = waves[:12], waves[12:]
    assert second.shape == first.shape == (12, int(1.2 * RATE))
    assert not np.array_equal(first, second)

    def by_energy(x):
        return x[np.argsort(np.sum(x ** 2, axis=1))]

    np.testing.assert_array_equal(by_energy(first), by_energy(second))


def test_fit_from_both_pipelines(shard_dirs, tmp_path):
    preset = str(tmp_path / "backbone")
    tiny_backbone().save_to_preset(preset)
    # No compile() call: a classifier from a preset is ready to fit.
    classifier = ASTClassifier.from_preset(preset, num_classes=3)
    clip = 0.65
    tf_ds, tf_info = pipelines.tf_dataset(
        shard_dirs["tfrecord"], 4, training=True, clip_seconds=clip,
        with_info=True)
    grain_ds, grain_info = pipelines.grain_dataset(
        shard_dirs["arrayrecord"], 4, training=True, clip_seconds=clip,
        with_info=True)
    for dataset in (tf_ds, grain_ds):
        history = classifier.fit(dataset, epochs=1, verbose=0,
                                 shuffle=False)
        assert np.isfinite(history.history["loss"][0])
    assert tf_info.skipped_records == grain_info.skipped_records == 0
    # Nothing is stuck on the datasets.
    for dataset in (tf_ds, grain_ds):
        assert not hasattr(dataset, "skipped_records")
        assert not hasattr(dataset, "info")


@pytest.mark.parametrize("fmt", ["tfrecord", "arrayrecord"])
def test_mixup_in_the_pipelines(shard_dirs, fmt):
    make = (pipelines.tf_dataset if fmt == "tfrecord"
            else pipelines.grain_dataset)

    def batches(seed):
        return collect(make(shard_dirs[fmt], 6, training=True,
                            clip_seconds=0.5, seed=seed, mixup_alpha=10.0))

    waves, targets = batches(seed=3)
    assert waves.shape == (12, 8000) and targets.shape == (12, 2)
    assert targets.dtype == np.float32
    # Soft one-hot targets: rows sum to 1; some clips are mixed.
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert ((targets > 0.01) & (targets < 0.99)).any()
    again = batches(seed=3)
    np.testing.assert_array_equal(waves, again[0])
    np.testing.assert_array_equal(targets, again[1])


@pytest.mark.large  # worker processes
def test_grain_worker_processes(shard_dirs):
    dataset = pipelines.grain_dataset(shard_dirs["arrayrecord"], 4,
                                      clip_seconds=0.5, num_workers=1)
    waves, labels = collect(dataset)
    assert waves.shape == (12, 8000)
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6


def run_script(tmp_path, script, *args):
    """Runs `script` as a file (spawned workers re-run a file, not `-c`)
    on this backend; `(return code, stdout + stderr)`."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    env = dict(os.environ, KERAS_BACKEND=keras.config.backend())
    result = subprocess.run([sys.executable, str(path), *args], env=env,
                            capture_output=True, text=True, timeout=240)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.large  # worker processes
def test_grain_workers_load_no_backend_and_leak_nothing(shard_dirs,
                                                        tmp_path):
    # The README's script: the backend is imported under the main guard
    # only; the last batch is alive when the script ends.
    code, output = run_script(tmp_path, """
        import multiprocessing
        import sys

        import keras_ast

        if __name__ == "__main__":
            import keras  # this backend, in this process only

            dataset = keras_ast.data.grain_dataset(
                sys.argv[1], 4, clip_seconds=0.5, num_workers=2)
            batches = iter(dataset)
            x, y = next(batches)
            for worker in multiprocessing.active_children():
                with open(f"/proc/{worker.pid}/maps") as maps:
                    libraries = maps.read()
                print("worker loads", [name for name in ("tensorflow",
                      "torch") if name in libraries])
            for x, y in batches:
                pass
            print("batch", type(x).__name__, x.shape)
            from absl import flags  # outside an absl app, left unparsed
            print("absl parsed", flags.FLAGS.is_parsed())
        """, shard_dirs["arrayrecord"])
    assert code == 0, output
    assert output.count("worker loads []") == 2, output
    assert "batch ndarray" in output
    assert "absl parsed False" in output
    # Shared memory blocks still held at the end are reported by
    # multiprocessing's resource tracker, on stderr.
    assert "leaked" not in output, output


@pytest.mark.large  # worker processes
def test_grain_workers_need_the_main_guard(shard_dirs, tmp_path):
    # Spawned workers re-run the script: without the guard, each calls
    # grain_dataset again and stops with one line, not a traceback.
    code, output = run_script(tmp_path, """
        import sys

        import keras_ast

        dataset = keras_ast.data.grain_dataset(
            sys.argv[1], 4, clip_seconds=0.5, num_workers=2)
        for x, y in dataset:
            pass
        """, shard_dirs["arrayrecord"])
    assert code != 0
    lines = output.splitlines()
    hint = ("keras_ast: grain_dataset(num_workers=2) was called again in "
            "a worker process (workers re-run the script's top level): "
            "put the script's work under `if __name__ == \"__main__\":`.")
    # One line from each worker (two writers: the lines may interleave).
    assert output.count(hint) == 2, output
    assert "bootstrapping phase" not in output
    assert len(lines) < 30, output


def test_files_are_readable_by_others(shard_dirs):
    for name in os.listdir(shard_dirs["tfrecord"]):
        mode = os.stat(os.path.join(shard_dirs["tfrecord"], name)).st_mode
        assert mode & 0o044 == 0o044 & ~_umask(), name


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_wrong_format_is_refused(shard_dirs):
    with pytest.raises(ValueError, match="tf_dataset reads TFRecord"):
        pipelines.tf_dataset(shard_dirs["arrayrecord"], 4)
    with pytest.raises(ValueError, match="grain_dataset reads ArrayRecord"):
        pipelines.grain_dataset(shard_dirs["tfrecord"], 4)


@pytest.mark.parametrize("fmt", ["tfrecord", "arrayrecord"])
def test_dataset_for_picks_the_pipeline_and_reads_once(shard_dirs, fmt,
                                                       monkeypatch):
    import tensorflow as tf

    from keras_ast.data import info as info_module

    opened = read_info(shard_dirs[fmt])
    # Handed the DatasetInfo, nothing reads dataset.json again.
    monkeypatch.setattr(info_module, "read_info", None)
    dataset, info = pipelines.dataset_for(opened, 5, clip_seconds=1.0,
                                          with_info=True)
    assert isinstance(dataset, tf.data.Dataset) == (fmt == "tfrecord")
    assert info.to_json() == opened.to_json()
    assert info.skipped_records == 0
    waves, labels = collect(dataset)
    assert waves.shape == (12, RATE)
    monkeypatch.undo()
    # Alone, it returns the dataset, what `fit` takes.
    dataset = pipelines.dataset_for(shard_dirs[fmt], 5, clip_seconds=1.0)
    assert collect(dataset)[0].shape == (12, RATE)
    with pytest.raises(TypeError, match="do not share: shuffle_buffer"):
        pipelines.dataset_for(shard_dirs[fmt], 5, shuffle_buffer=8)


def test_bad_records_are_skipped_and_counted(tmp_path, shard_dirs):
    import shutil

    import tensorflow as tf

    from keras_ast.data import records

    directory = tmp_path / "bad"
    shutil.copytree(shard_dirs["tfrecord"], directory)
    info = read_info(str(directory))
    bad = np.full(100, np.nan, np.float32)
    path = os.path.join(directory, info.shards[0].file)
    existing = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    with tf.io.TFRecordWriter(path) as writer:
        for record in existing + [records.encode_example(bad, [0], "x")]:
            writer.write(record)
    # The rewritten shard no longer matches its sha256: read it unchecked.
    dataset, info = pipelines.tf_dataset(str(directory), 4,
                                         clip_seconds=0.5, verify=False,
                                         with_info=True)
    assert isinstance(info, PipelineInfo) and info.skipped_records == 0
    # The count is live: it grows while the data streams.
    waves, _ = collect(dataset)
    assert waves.shape[0] == 12
    assert info.skipped_records == 1
    assert info.num_examples == 12 and info.directory == str(directory)


def test_fit_length():
    audio = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(pipelines.fit_length(audio, 4), audio[:4])
    padded = pipelines.fit_length(audio, 12)
    np.testing.assert_array_equal(padded[:10], audio)
    assert padded[10:].tolist() == [0, 0]
    crop = pipelines.fit_length(audio, 4, np.random.default_rng(0))
    assert crop.tolist() == list(range(int(crop[0]), int(crop[0]) + 4))
