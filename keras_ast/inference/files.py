"""Audio files in: folders listed, files decoded ahead of the model.

`classify` and `tag` (and so `ASTClassifier.classify`, `.tag` and
`keras-ast classify`) decode their files here: a few threads decode a
bounded number of files ahead of the one the caller is using, so decoding
overlaps the model's calls (the decoders and the frameworks release the
GIL) and memory holds a few files, not all of them.
"""

import concurrent.futures
import os

from keras_ast.data import audio_io
from keras_ast.inference.waveforms import is_path


def list_audio(paths):
    """Files of `paths`, folders walked for audio files, in sorted order.

    A path that is not a folder is kept as is (a missing file is reported
    when it is decoded).

    Examples:
    >>> list_audio(["recordings/", "extra.wav"])
    ['recordings/a.flac', 'recordings/b/c.wav', 'extra.wav']
    """
    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(root, name) for name in sorted(files)
                          if name.lower().endswith(
                              audio_io.AUDIO_EXTENSIONS)]
        else:
            found.append(path)
    return found


def decode_workers():
    """Decoding threads: up to 8, one a core."""
    return max(1, min(8, os.cpu_count() or 1))


def decoded_files(items, sampling_rate, ahead=32, workers=None):
    """`(path, waveform, error)` for each of `items`, in their order.

    Paths are decoded with `keras_ast.load_audio` (mono, resampled to
    `sampling_rate`) by `workers` threads (default `decode_workers()`), at
    most `ahead` items past the one last yielded. Other items (clips
    already in memory) pass through as `(None, item, None)`.

    Args:
        items: paths, or clips mixed with paths.
        sampling_rate: the rate files are resampled to.
        ahead: items decoded ahead of the consumer, at least 1.
        workers: decoding threads.

    Yields:
        `(path, waveform, None)` for a file that decodes, `(path, None,
        error)` with the `keras_ast.data.audio_io.AudioDecodeError` for one
        that does not (the caller raises or skips it), and `(None, clip,
        None)` for a clip.

    Examples:
    >>> [(path, error is None) for path, _, error in decoded_files(
    ...     ["a.wav", "gone.wav"], 16000)]
    [('a.wav', True), ('gone.wav', False)]
    """
    items = list(items)
    if not any(is_path(item) for item in items):
        for item in items:  # no files: no threads
            yield None, item, None
        return
    pool = concurrent.futures.ThreadPoolExecutor(
        workers or decode_workers(), thread_name_prefix="decode")

    def submit(item):
        if not is_path(item):
            return None
        # Looked up per call, so the loader can be replaced (tests).
        return pool.submit(audio_io.load_audio, item, sampling_rate)

    try:
        for item, future in audio_io.in_order(submit, items, max(1, ahead)):
            if future is None:
                yield None, item, None
                continue
            try:
                waveform, error = future.result(), None
            except audio_io.AudioDecodeError as decode_error:
                waveform, error = None, decode_error
            yield os.fsdecode(item), waveform, error
    finally:
        # A consumer that stops early (an error) waits for no more files.
        pool.shutdown(wait=True, cancel_futures=True)
