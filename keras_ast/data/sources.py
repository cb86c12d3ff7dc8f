"""Listing a labelled audio source: class folders, CSV or JSON-lines manifests.

A source is one of:
- a folder with one sub-folder per class: the label of a file is the name
  of the class folder it is in (at any depth below it);
- a CSV manifest (`.csv`) with a `path` column and a `label` or `labels`
  column, several labels of one clip separated by `;`;
- a JSON-lines manifest (`.jsonl`, `.ndjson` or `.json`), one object a line:
  `{"path": ..., "label": "dog"}` or `{"path": ..., "labels": ["a", "b"]}`.

Relative paths in a manifest are relative to the manifest's folder. A path
listed several times gets the union of its labels. The data is multi-label
when any clip has no label or more than one. `source_fingerprint` tells
whether two listings are the same (`make_shards` resumes only then).
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
`labels` (sorted tuple of label names)."""


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
        for folder, dirs, files in os.walk(path, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(files):
                if _is_audio(file) and not file.startswith("."):
                    full = os.path.join(folder, file)
                    entries.append(
                        Entry(full, _record_name(full, source), (name,))
                    )
    return entries, skipped


def _read_csv(manifest):
    rows = []
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [column.strip() for column in next(reader, [])]
        if "path" not in header:
            raise ValueError(
                f"{manifest}: a CSV manifest needs a `path` column (and a "
                f"`label` or `labels` column); its header is {header}."
            )
        label_column = next(
            (c for c in ("labels", "label") if c in header), None
        )
        if label_column is None:
            raise ValueError(
                f"{manifest}: a CSV manifest needs a `label` or `labels` "
                f"column; its header is {header}."
            )
        path_index = header.index("path")
        label_index = header.index(label_column)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= path_index or not row[path_index].strip():
                raise ValueError(
                    f"{manifest}, line {reader.line_num}: no path."
                )
            value = row[label_index] if len(row) > label_index else ""
            rows.append((row[path_index].strip(), _split_labels(value),
                         reader.line_num))
    return rows


def _read_jsonl(manifest):
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
                raise ValueError(f"{where}: no `label` or `labels`.")
            if not isinstance(labels, list) or not all(
                isinstance(label, (str, int)) for label in labels
            ):
                raise ValueError(
                    f"{where}: labels must be a string or a list of strings."
                )
            labels = [str(label).strip() for label in labels]
            rows.append((item["path"], [x for x in labels if x], line_num))
    return rows


def _list_manifest(manifest):
    if manifest.lower().endswith(".csv"):
        rows = _read_csv(manifest)
    else:
        rows = _read_jsonl(manifest)
    base = os.path.dirname(manifest)
    merged = {}
    for path, labels, _ in rows:
        full = os.path.normpath(
            os.path.join(base, os.path.expanduser(path))
        )
        name = _record_name(full, base)
        if name in merged:
            merged[name] = (full, merged[name][1] | set(labels))
        else:
            merged[name] = (full, set(labels))
    entries = [Entry(full, name, tuple(sorted(labels)))
               for name, (full, labels) in merged.items()]
    return entries, []


def list_source(source):
    """The clips of `source`, sorted by name.

    Args:
        source: a class-folder directory, a CSV manifest or a JSON-lines
            manifest (see the module doc).

    Returns:
        `(entries, skipped)`: a list of `Entry`, and a `SkippedFile` for
        each audio file that cannot be labelled.

    Raises:
        ValueError: a manifest that is not valid.
        FileNotFoundError: `source` does not exist.

    Examples:
    >>> entries, skipped = list_source("speech_commands/train")
    >>> entries[0].name, entries[0].labels
    ('down/0a2b400e_nohash_0.wav', ('down',))
    """
    source = os.path.abspath(os.fspath(source))
    if os.path.isdir(source):
        entries, skipped = _list_class_folders(source)
    elif os.path.isfile(source):
        if not source.lower().endswith((".csv",) + JSONL_EXTENSIONS):
            raise ValueError(
                f"{source}: a manifest must be a .csv or a JSON-lines "
                "(.jsonl, .ndjson, .json) file; a class-folder source must "
                "be a directory."
            )
        entries, skipped = _list_manifest(source)
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
