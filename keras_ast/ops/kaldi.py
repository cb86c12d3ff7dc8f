"""Host-side constants of Kaldi-compatible log-mel filter banks, and
AudioSet's feature statistics.

These are the fixed tensors of `torchaudio.compliance.kaldi.fbank` with the
settings AST uses (25 ms Hann frames every 10 ms, 512-point FFT, triangular
filters on the Kaldi mel scale). They are computed once in float64 with NumPy
and handed to the device as float32 constants by `ASTAudioConverter`.
"""

import functools

import numpy as np

FRAME_LENGTH = 400  # 25 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms at 16 kHz
FFT_LENGTH = 512  # next power of two above FRAME_LENGTH
PREEMPHASIS = 0.97
LOW_FREQUENCY = 20.0
LOG_FLOOR = float(np.finfo(np.float32).eps)
# Mean and standard deviation of AudioSet's log-mel features, with which
# the AST authors normalised them.
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974


def kaldi_mel_scale(hertz):
    """Kaldi's mel scale, `1127 * ln(1 + f / 700)`."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=None)
def mel_filter_bank(num_mel_bins, sampling_rate):
    """Triangular mel filters, built in mel space as Kaldi does.

    Args:
        num_mel_bins: number of filters.
        sampling_rate: in Hz; the filters span 20 Hz to the Nyquist frequency.

    Returns:
        float32 array `(FFT_LENGTH // 2 + 1, num_mel_bins)`; no area
        normalisation, and the Nyquist bin gets zero weight.

    Examples:
    >>> mel_filter_bank(128, 16000).shape
    (257, 128)
    """
    num_bins = FFT_LENGTH // 2 + 1
    mel_low = kaldi_mel_scale(LOW_FREQUENCY)
    mel_high = kaldi_mel_scale(sampling_rate / 2.0)
    edges = np.linspace(mel_low, mel_high, num_mel_bins + 2)
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    bin_mel = kaldi_mel_scale(np.arange(num_bins) * sampling_rate / FFT_LENGTH)
    bin_mel = bin_mel[:, None]
    rising = (bin_mel - left) / (center - left)
    falling = (right - bin_mel) / (right - center)
    filters = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    filters.setflags(write=False)  # shared by the cache
    return filters


@functools.lru_cache(maxsize=None)
def hann_window():
    """The symmetric ("hanning", periodic=False) window of one frame,
    float32."""
    n = np.arange(FRAME_LENGTH, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (FRAME_LENGTH - 1))
    window = window.astype(np.float32)
    window.setflags(write=False)  # shared by the cache
    return window


@functools.lru_cache(maxsize=None)
def windowed_dft_matrix():
    """The Hann window and the 512-point real DFT of a frame, as one matrix.

    A frame of `FRAME_LENGTH` samples zero-padded to `FFT_LENGTH` has the
    real DFT `frame @ matrix`: the padding contributes nothing, so the rows
    stop at `FRAME_LENGTH`, and the window is folded into them. Columns are
    the real parts (cosines) of the `FFT_LENGTH // 2 + 1` bins, then their
    imaginary parts (minus sines). Built in float64 with the phase reduced
    exactly in integers (`n * k mod FFT_LENGTH`), then cast to float32.

    Returns:
        float32 array `(FRAME_LENGTH, 2 * (FFT_LENGTH // 2 + 1))`.

    Examples:
    >>> windowed_dft_matrix().shape
    (400, 514)
    """
    n = np.arange(FRAME_LENGTH, dtype=np.int64)[:, None]
    k = np.arange(FFT_LENGTH // 2 + 1, dtype=np.int64)[None, :]
    phase = 2.0 * np.pi * ((n * k) % FFT_LENGTH) / FFT_LENGTH
    n = np.arange(FRAME_LENGTH, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (FRAME_LENGTH - 1))
    matrix = np.concatenate([np.cos(phase), -np.sin(phase)], axis=1)
    matrix = (window[:, None] * matrix).astype(np.float32)
    matrix.setflags(write=False)  # shared by the cache
    return matrix
