"""Unlabelled audio: sources without labels -> shards -> waveform batches.

A folder whose audio sits at its top level, or a manifest without a label
column or key, makes shards with no labels (`DatasetInfo.labelled` False);
a folder with audio in sub-folders stays a class-folder source unless
`unlabelled=True` (`--unlabelled`). Both pipelines then yield waveform
batches alone, refuse the options that need labels, and training or
evaluating a classifier on such shards is refused with a message naming
the folder.
"""

import json
import os

import keras
import numpy as np
import pytest
import soundfile
from conftest import tiny_backbone
from test_shards import read_records

from keras_ast.cli import main as cli
from keras_ast.data import audio_io
from keras_ast.data import pipelines
from keras_ast.data.info import read_info
from keras_ast.data.shards import make_shards
from keras_ast.data.sources import list_source

RATE = 16000
FORMATS = ["tfrecord", "arrayrecord"]
CLIP = 0.25  # seconds the pipelines cut or pad every clip to
N = int(CLIP * RATE)


def write_clips(folder, names, seed=0):
    """Short noise WAVs (0.2-0.5 s) at `names` under `folder`;
    `{name: audio as the shards hold it}`."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in names:
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        n = int(RATE * rng.uniform(0.2, 0.5))
        wave = (0.3 * rng.uniform(-1, 1, n)).astype(np.float32)
        soundfile.write(path, wave, RATE, subtype="FLOAT")
        written[name] = audio_io.load_audio(path, RATE)
    return written


def shards_of(source, out, fmt, **options):
    return make_shards(str(source), str(out), format=fmt, num_workers=0,
                       progress=False, **options)


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """A folder of 7 top-level WAVs and a corrupt one, and its shards in
    both formats: `(source, {name: audio}, {format: shard directory})`."""
    root = tmp_path_factory.mktemp("unlabelled")
    source = root / "source"
    clips = write_clips(str(source), [f"clip{i}.wav" for i in range(7)])
    (source / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(200)))
    out = {}
    for fmt in FORMATS:
        out[fmt] = str(root / fmt)
        shards_of(source, out[fmt], fmt, shard_size_mb=0.02)
    return str(source), clips, out


def expected_batch(clips):
    """The eval pipeline's rows of `clips`: the start, padded, sorted by
    energy (the write order is shuffled)."""
    rows = np.stack([pipelines.fit_length(audio, N)
                     for audio in clips.values()])
    return rows[np.argsort(np.sum(rows ** 2, axis=1))]


def batches(dataset):
    """Every batch, checked to be one array (no labels beside it)."""
    found = []
    for batch in dataset:
        assert not isinstance(batch, (tuple, list, dict)), type(batch)
        found.append(np.asarray(batch))
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_top_level_folder_makes_unlabelled_shards(flat, fmt):
    source, clips, out = flat
    info = read_info(out[fmt])
    assert not info.labelled
    assert info.labels == () and dict(info.class_counts) == {}
    assert not info.multi_label
    assert info.num_examples == len(clips)
    assert len(info.shards) > 1  # several shards, so the cut is tested
    assert all(dict(shard.class_counts) == {} for shard in info.shards)
    # The bad file is skipped and reported, the others written.
    assert [(s.path, s.reason.split(":")[0]) for s in info.skipped] == [
        ("corrupt.wav", "does not decode")]
    records = read_records(out[fmt], info)
    assert sorted(path for path, *_ in records) == sorted(clips)
    for path, audio, labels, _ in records:
        assert labels == []
        np.testing.assert_array_equal(audio, clips[path])


@pytest.mark.parametrize("fmt", FORMATS)
def test_pipelines_yield_waveform_batches_alone(flat, fmt):
    _, clips, out = flat
    make = (pipelines.tf_dataset if fmt == "tfrecord"
            else pipelines.grain_dataset)
    dataset, info = make(out[fmt], 3, clip_seconds=CLIP, with_info=True)
    found = batches(dataset)
    assert [batch.shape for batch in found] == [
        (3, N), (3, N), (1, N)]
    rows = np.concatenate(found)
    rows = rows[np.argsort(np.sum(rows ** 2, axis=1))]
    np.testing.assert_allclose(rows, expected_batch(clips), atol=0)
    assert info.skipped_records == 0 and not info.labelled
    # Training: shuffled and cropped, the last partial batch dropped.
    found = batches(pipelines.dataset_for(out[fmt], 3, training=True,
                                          clip_seconds=CLIP, time_shift=0.1))
    assert [batch.shape for batch in found] == [(3, N)] * 2


class InputOnly(keras.Model):
    """A model whose loss records what `fit` gives it as targets."""

    targets = []

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        InputOnly.targets.append(y)
        return keras.ops.mean(keras.ops.square(y_pred))


@pytest.mark.parametrize("fmt", FORMATS)
def test_fit_gives_the_model_its_input_only(flat, fmt):
    _, _, out = flat
    inputs = keras.Input((N,))
    model = InputOnly(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd")
    InputOnly.targets.clear()
    dataset = pipelines.dataset_for(out[fmt], 3, training=True,
                                    clip_seconds=CLIP)
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert InputOnly.targets and all(
        y is None for y in InputOnly.targets)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("option, value", [
    ("one_hot", True), ("mixup_alpha", 10.0), ("balanced", True)])
def test_options_that_need_labels_are_refused(flat, fmt, option, value):
    _, _, out = flat
    make = (pipelines.tf_dataset if fmt == "tfrecord"
            else pipelines.grain_dataset)
    with pytest.raises(ValueError, match=f"unlabelled.*{option}="):
        make(out[fmt], 2, training=True, **{option: value})


def write_manifests(folder, clips):
    """A CSV with a path column alone and a JSON-lines manifest without
    labels, both listing `clips` (one path twice)."""
    names = sorted(clips) + [sorted(clips)[0]]
    csv_path = os.path.join(folder, "list.csv")
    with open(csv_path, "w") as f:
        f.write("path,duration\n")
        f.writelines(f"audio/{name},1\n" for name in names)
    jsonl = os.path.join(folder, "list.jsonl")
    with open(jsonl, "w") as f:
        f.writelines(json.dumps({"path": f"audio/{name}"}) + "\n"
                     for name in names)
    return csv_path, jsonl


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest_without_labels_is_unlabelled(tmp_path, kind):
    clips = write_clips(str(tmp_path / "audio"), ["a.wav", "b.wav", "c.wav"])
    manifest = write_manifests(str(tmp_path), clips)[kind == "jsonl"]
    entries, skipped = list_source(manifest)
    assert [(e.name, e.labels) for e in entries] == [
        (f"audio/{name}", ()) for name in sorted(clips)]
    assert skipped == []
    info = shards_of(manifest, tmp_path / "out", "arrayrecord")
    assert not info.labelled and info.num_examples == 3
    rows = np.concatenate(batches(pipelines.grain_dataset(
        info, 2, clip_seconds=CLIP)))
    assert rows.shape == (3, N)


def test_manifest_labelled_on_some_lines_only_is_refused(tmp_path):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text('{"path": "a.wav", "label": "dog"}\n'
                        '{"path": "b.wav"}\n')
    with pytest.raises(ValueError, match=r"line 2: no `label`.*line 1"):
        list_source(str(manifest))
    # The switch ignores the labels.
    entries, _ = list_source(str(manifest), unlabelled=True)
    assert [(e.name, e.labels) for e in entries] == [
        ("a.wav", ()), ("b.wav", ())]


def test_unlabelled_ignores_a_manifests_labels(tmp_path):
    write_clips(str(tmp_path), ["a.wav", "b.wav"])
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\na.wav,dog\nb.wav,cat\n")
    assert read_labels(list_source(str(manifest))) == [("cat",), ("dog",)]
    info = shards_of(manifest, tmp_path / "out", "tfrecord", unlabelled=True)
    assert not info.labelled and info.num_examples == 2
    assert all(labels == [] for *_, labels, _ in read_records(
        str(tmp_path / "out"), info))


def read_labels(listing):
    entries, _ = listing
    return sorted(entry.labels for entry in entries)


def test_nested_folders_need_the_switch(tmp_path, capsys):
    names = ["spk1/ch1/a.wav", "spk1/ch2/b.wav", "spk2/ch1/c.wav"]
    clips = write_clips(str(tmp_path / "corpus"), names)
    source = str(tmp_path / "corpus")
    # Without the switch: class folders, named by the top sub-folder.
    assert read_labels(list_source(source)) == [
        ("spk1",), ("spk1",), ("spk2",)]
    out = str(tmp_path / "shards")
    status = cli.main(["make-shards", source, out, "--unlabelled",
                       "--format", "arrayrecord", "--num-workers", "0",
                       "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "3 examples, unlabelled," in printed
    info = read_info(out)
    assert not info.labelled and info.num_examples == 3
    assert sorted(path for path, *_ in read_records(out, info)) == sorted(
        clips)


def test_top_level_audio_beside_class_folders_is_skipped(tmp_path, capsys):
    write_clips(str(tmp_path / "src"), ["dog/a.wav", "cat/b.wav", "c.wav"])
    out = str(tmp_path / "shards")
    status = cli.main(["make-shards", str(tmp_path / "src"), out,
                       "--format", "arrayrecord", "--num-workers", "0",
                       "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 1  # a file was skipped
    assert "2 examples, 2 labels," in printed
    assert "skipped c.wav: not inside a class folder" in printed
    info = read_info(out)
    assert info.labelled and info.labels == ("cat", "dog")


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="No audio files"):
        shards_of(tmp_path / "empty", tmp_path / "out", "arrayrecord")


def test_a_classifier_does_not_train_or_evaluate_on_unlabelled_shards(
        flat, tmp_path):
    from keras_ast import ASTClassifier
    from keras_ast.training.evaluate import evaluate
    from keras_ast.training.train import train

    _, _, out = flat
    preset = str(tmp_path / "backbone")
    tiny_backbone().save_to_preset(preset)
    labelled = tmp_path / "labelled"
    write_clips(str(labelled), ["no/a.wav", "yes/b.wav"])
    labelled_shards = str(tmp_path / "labelled_shards")
    shards_of(labelled, labelled_shards, "tfrecord")
    for shards, validation in ((out["tfrecord"], None),
                               (labelled_shards, out["arrayrecord"])):
        run = tmp_path / "run"
        with pytest.raises(ValueError) as error:
            train(preset, shards, str(run), validation=validation, epochs=1,
                  batch_size=2)
        message = str(error.value)
        assert (validation or shards) in message
        assert "unlabelled" in message and "keras-ast pretrain" in message
        assert not run.exists()
    classifier = ASTClassifier.from_preset(preset, num_classes=2)
    with pytest.raises(ValueError, match="unlabelled.*evaluate"):
        evaluate(classifier, out["arrayrecord"])


@pytest.mark.large  # Apache Beam's DirectRunner
def test_beam_makes_the_same_unlabelled_shards(flat, tmp_path):
    pytest.importorskip("apache_beam")
    from keras_ast.data.beam_shards import make_shards_beam

    source, clips, out = flat
    local = read_info(out["arrayrecord"])
    beam = make_shards_beam(source, str(tmp_path / "beam"),
                            format="arrayrecord", shard_size_mb=0.02)
    for key in ("labels", "class_counts", "multi_label", "num_examples",
                "skipped", "source_fingerprint"):
        assert getattr(beam, key) == getattr(local, key), key
    assert not beam.labelled
    assert [(path, labels) for path, _, labels, _ in read_records(
        beam.directory, beam)] == [(path, labels) for path, _, labels, _ in
                                   read_records(local.directory, local)]
