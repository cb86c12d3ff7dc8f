"""One clip as one record: the encodings of `FORMAT.md`."""

import json
import struct

import numpy as np

MAGIC = b"KAST"


def encode(audio, labels, path=""):
    """A clip as TF-free bytes (the ArrayRecord encoding).

    Args:
        audio: mono float waveform at 16 kHz.
        labels: label ids (one for single-label data, any number otherwise).
        path: where the clip came from.

    Examples:
    >>> audio, labels, path = decode(encode(np.zeros(3), [1], "a.wav"))
    """
    audio = np.ascontiguousarray(audio, dtype="<f4")
    header = json.dumps({
        "labels": [int(label) for label in labels],
        "num_samples": int(audio.shape[0]),
        "path": str(path),
    }).encode("utf-8")
    return MAGIC + struct.pack("<I", len(header)) + header + audio.tobytes()


def decode(record):
    """`(audio float32, labels int32 array, path)` from `encode`'s bytes."""
    if record[:4] != MAGIC:
        raise ValueError("Not a keras_ast record (bad magic bytes).")
    (size,) = struct.unpack("<I", record[4:8])
    header = json.loads(record[8:8 + size].decode("utf-8"))
    audio = np.frombuffer(record, dtype="<f4", offset=8 + size)
    if audio.shape[0] != header["num_samples"]:
        raise ValueError(
            f"Truncated record: {audio.shape[0]} samples, header says "
            f"{header['num_samples']}."
        )
    labels = np.asarray(header["labels"], dtype=np.int32)
    return audio.astype(np.float32), labels, header["path"]


def encode_example(audio, labels, path=""):
    """A clip as a serialized `tf.train.Example` (the TFRecord encoding)."""
    import tensorflow as tf

    audio = np.ascontiguousarray(audio, dtype="<f4")
    feature = {
        "audio": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[audio.tobytes()])),
        "labels": tf.train.Feature(
            int64_list=tf.train.Int64List(value=[int(x) for x in labels])),
        "num_samples": tf.train.Feature(
            int64_list=tf.train.Int64List(value=[audio.shape[0]])),
        "path": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[str(path).encode()])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()
