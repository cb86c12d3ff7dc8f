"""Listing an audio source: class folders, CSV or JSON-lines manifests.

A source is one of:
- a folder with one sub-folder per class: the label of a file is the name
  of the class folder it is in (at any depth below it); audio files at
  the folder's top level are then skipped ("not inside a class folder");
- a folder of unlabelled audio: its audio files all sit at its top level
  (no sub-folder holds audio);
- a CSV manifest (`.csv`) with a `path` column and a `label` or `labels`
  column, several labels of one clip separated by `;`; without a label
  column, its clips are unlabelled;
- a JSON-lines manifest (`.jsonl`, `.ndjson` or `.json`), one object a line:
  `{"path": ..., "label": "dog"}` or `{"path": ..., "labels": ["a", "b"]}`;
  with neither key on any line (`{"path": ...}`), its clips are unlabelled
  (a manifest with the key on some lines only is refused).

Unlabelled clips have no labels (`Entry.labels == ()`). A folder whose
audio sits in sub-folders is a class-folder source, whatever its
sub-folders mean: a nested unlabelled corpus (`speaker/chapter/*.flac`)
needs `unlabelled=True` (`keras-ast make-shards --unlabelled`), which takes
every audio file under the folder, at any depth, or every clip of a
manifest, with no labels (a manifest's labels are then ignored).

Relative paths in a manifest are relative to the manifest's folder. A path
listed several times gets the union of its labels. Labelled data is
multi-label when any clip has no label or more than one.
`source_fingerprint` tells whether two listings are the same (`make_shards`
resumes only then).
"""

import collections
import csv
import hashlib
import json
import os

from keras_ast.data import audio_io
from keras_ast.data.info import SkippedFile

JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")

Entry = collections.namedtuple("Entry", ["path", "name", "labels"])
Entry.__doc__ = """One source clip: `path` (absolute), `name` (as recorded:
relative to the source folder or manifest folder where it is below it) and
`labels` (sorted tuple of label names; empty for an unlabelled clip)."""


def _is_audio(name):
    return name.lower().endswith(audio_io.AUDIO_EXTENSIONS)


def _record_name(path, base):
    relative = os.path.relpath(path, base)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return path.replace(os.sep, "/")
    return relative.replace(os.sep, "/")


def _split_labels(value):
    if value is None:
        return []
    return [part.strip() for part in str(value).split(";") if part.strip()]


def _audio_under(folder):
    """The audio files under `folder`, at any depth, sorted (hidden files
    and folders left out)."""
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(parent, file) for file in sorted(files)
                     if _is_audio(file) and not file.startswith("."))
    return found


def _list_folder(source, unlabelled):
    """Class folders, or unlabelled audio (see the module doc)."""
    if unlabelled:
        return [Entry(path, _record_name(path, source), ())
                for path in _audio_under(source)], []
    entries, skipped = _list_class_folders(source)
    if not entries and skipped:
        # Audio at the top level only: an unlabelled folder.
        return [Entry(os.path.join(source, item.path), item.path, ())
                for item in skipped], []
    return entries, skipped


def _list_class_folders(source):
    entries, skipped = [], []
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if name.startswith("."):
            continue
        if os.path.isfile(path):
            if _is_audio(name):
                skipped.append(SkippedFile(name, "not inside a class folder"))
            continue
        entries.extend(Entry(full, _record_name(full, source), (name,))
                       for full in _audio_under(path))
    return entries, skipped


def _read_csv(manifest):
    """`(path, labels or None, line)` rows; None without a label column."""
    rows = []
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [column.strip() for column in next(reader, [])]
        if "path" not in header:
            raise ValueError(
                f"{manifest}: a CSV manifest needs a `path` column (and a "
                f"`label` or `labels` column for labelled clips); its "
                f"header is {header}."
            )
        label_column = next(
            (c for c in ("labels", "label") if c in header), None
        )
        path_index = header.index("path")
        label_index = (None if label_column is None
                       else header.index(label_column))
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= path_index or not row[path_index].strip():
                raise ValueError(
                    f"{manifest}, line {reader.line_num}: no path."
                )
            labels = None
            if label_index is not None:
                value = row[label_index] if len(row) > label_index else ""
                labels = _split_labels(value)
            rows.append((row[path_index].strip(), labels, reader.line_num))
    return rows


def _read_jsonl(manifest):
    """`(path, labels or None, line)` rows; None on a line without a
    `label` or `labels` key."""
    rows = []
    with open(manifest, encoding="utf-8-sig") as f:
        for line_num, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{manifest}, line {line_num}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not JSON ({error}).") from None
            if not isinstance(item, dict) or not isinstance(
                item.get("path"), str
            ):
                raise ValueError(
                    f'{where}: expected {{"path": ..., "label": ...}} or '
                    f'{{"path": ..., "labels": [...]}}.'
                )
            if "labels" in item:
                labels = item["labels"]
                if isinstance(labels, str):
                    labels = _split_labels(labels)
            elif "label" in item:
                labels = item["label"]
                labels = ([labels] if isinstance(labels, (str, int))
                          else labels)
            else:
                rows.append((item["path"], None, line_num))
                continue
            if not isinstance(labels, list) or not all(
                isinstance(label, (str, int)) for label in labels
            ):
                raise ValueError(
                    f"{where}: labels must be a string or a list of strings."
                )
            labels = [str(label).strip() for label in labels]
            rows.append((item["path"], [x for x in labels if x], line_num))
    return rows


def _check_labelled(manifest, rows):
    """Whether the rows are labelled: all of them, or none."""
    without = [line for _, labels, line in rows if labels is None]
    if not without:
        return True
    if len(without) == len(rows):
        return False
    with_labels = next(line for _, labels, line in rows
                       if labels is not None)
    raise ValueError(
        f"{manifest}, line {without[0]}: no `label` or `labels`, while "
        f"line {with_labels} has labels. Give every line its labels (an "
        "empty list for a clip without any), or none for unlabelled audio "
        "(or make the shards with --unlabelled / unlabelled=True, which "
        "ignores the labels)."
    )


def _list_manifest(manifest, unlabelled):
    if manifest.lower().endswith(".csv"):
        rows = _read_csv(manifest)
    else:
        rows = _read_jsonl(manifest)
    if not unlabelled:
        unlabelled = not _check_labelled(manifest, rows)
    base = os.path.dirname(manifest)
    merged = {}
    for path, labels, _ in rows:
        full = os.path.normpath(
            os.path.join(base, os.path.expanduser(path))
        )
        name = _record_name(full, base)
        labels = set() if unlabelled else set(labels)
        if name in merged:
            merged[name] = (full, merged[name][1] | labels)
        else:
            merged[name] = (full, labels)
    entries = [Entry(full, name, tuple(sorted(labels)))
               for name, (full, labels) in merged.items()]
    return entries, []


def list_source(source, unlabelled=False):
    """The clips of `source`, sorted by name.

    Args:
        source: a class-folder directory, a folder of unlabelled audio, a
            CSV manifest or a JSON-lines manifest (see the module doc).
        unlabelled: list every audio file under a folder (at any depth),
            or every clip of a manifest, with no labels.

    Returns:
        `(entries, skipped)`: a list of `Entry` (`labels == ()` for
        unlabelled clips), and a `SkippedFile` for each audio file that
        cannot be labelled.

    Raises:
        ValueError: a manifest that is not valid (or labelled on some
            lines only).
        FileNotFoundError: `source` does not exist.

    Examples:
    >>> entries, skipped = list_source("speech_commands/train")
    >>> entries[0].name, entries[0].labels
    ('down/0a2b400e_nohash_0.wav', ('down',))
    """
    source = os.path.abspath(os.fspath(source))
    if os.path.isdir(source):
        entries, skipped = _list_folder(source, unlabelled)
    elif os.path.isfile(source):
        if not source.lower().endswith((".csv",) + JSONL_EXTENSIONS):
            raise ValueError(
                f"{source}: a manifest must be a .csv or a JSON-lines "
                "(.jsonl, .ndjson, .json) file; a class-folder source must "
                "be a directory."
            )
        entries, skipped = _list_manifest(source, unlabelled)
    else:
        raise FileNotFoundError(f"The source {source} does not exist.")
    entries.sort(key=lambda entry: entry.name)
    return entries, skipped


def source_fingerprint(entries):
    """sha256 of the sorted `(name, labels)` list of a source.

    Examples:
    >>> source_fingerprint(list_source("speech_commands/train")[0])
    '3f6c...'
    """
    listing = [[entry.name, list(entry.labels)]
               for entry in sorted(entries, key=lambda e: e.name)]
    text = json.dumps(listing, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
