"""`ASTAudioConverter`: raw waveforms to AST's normalised log-mel features."""

import keras
import numpy as np
from keras import ops

from keras_ast.inference.waveforms import check_waveforms
from keras_ast.inference.waveforms import pad_waveforms
from keras_ast.inference.waveforms import rate_error
from keras_ast.ops import compiler
from keras_ast.ops import kaldi
from keras_ast.ops.slicing import is_traced
from keras_ast.presets import io as preset_io
from keras_ast.presets.builtin import BUILTIN_PRESETS

_NUM_BINS = kaldi.FFT_LENGTH // 2 + 1
SPECTRUM_METHODS = ("fft", "matmul")


@keras.saving.register_keras_serializable(package="keras_ast")
class ASTAudioConverter(keras.layers.Layer):
    """Kaldi-compatible log-mel filter banks, as AST was trained on.

    Computes, per clip, what `transformers.ASTFeatureExtractor` computes:
    25 ms frames every 10 ms (Kaldi `snip_edges`), DC removal,
    pre-emphasis 0.97, a symmetric Hann window, the power spectrum of a
    512-point FFT, `num_mel_bins` triangular filters on the Kaldi mel scale
    from 20 Hz to Nyquist, the natural log floored at float32 epsilon, then
    zero-padding or truncation to `max_length` frames and
    `(x - mean) / (2 * std)`. Everything runs in `keras.ops`, so the layer
    runs on the accelerator, inside `jit` / `tf.function` and in exported
    SavedModels. It always computes in float32, whatever the dtype policy.

    Clips of different lengths share a batch through `lengths`: each clip
    gives exactly what it would give alone. A Python list of 1-D arrays is
    padded for you. A clip shorter than one frame (400 samples) is
    zero-padded to one frame, so it gives one frame of features and
    `max_length - 1` padding frames instead of an error.

    Args:
        sampling_rate: the rate the layer expects, in Hz. Inputs are not
            resampled: a call that states another rate is refused.
        num_mel_bins: number of mel filters (the feature size).
        max_length: number of frames the output is padded or cut to.
        mean: normalisation mean (AudioSet's by default).
        std: normalisation standard deviation (AudioSet's by default).
        do_normalize: whether to apply `(x - mean) / (2 * std)`.
        spectrum_method: how the power spectrum is computed: `"fft"`
            (`ops.rfft`) or `"matmul"` (one product with a DFT table,
            which ONNX and LiteRT exporters can write). Both give the same
            features within float32 rounding.

    Raises:
        ValueError: `max_length` below 1, `std` not positive, or an
            unknown `spectrum_method`.

    Call arguments:
        - `waveforms`: float waveforms in [-1, 1] (or integer PCM, scaled by
          full scale), `(batch, samples)` or `(samples,)`, or a list of
          1-D clips of any lengths; see `keras_ast.inference.waveforms`
          for the rules host arrays follow.
        - `lengths`: optional int `(batch,)`, the number of valid samples of
          each row; samples past it are ignored. Defaults to all samples.
        - `sampling_rate`: optional; the rate of `waveforms`, checked against
          the layer's.

        A call returns float32 features `(batch, max_length, num_mel_bins)`.
        It raises `ValueError` for host audio that the rules of
        `keras_ast.inference.waveforms` refuse, or for a `sampling_rate`
        other than the layer's.

    Examples:
        >>> converter = ASTAudioConverter(max_length=128)
        >>> features = converter(np.zeros((2, 16000), "float32"))
        >>> tuple(features.shape)
        (2, 128, 128)
    """

    # Built-in preset names -> hub repository, description, size, score.
    presets = BUILTIN_PRESETS

    def __init__(
        self,
        sampling_rate=16000,
        num_mel_bins=128,
        max_length=1024,
        mean=kaldi.AUDIOSET_MEAN,
        std=kaldi.AUDIOSET_STD,
        do_normalize=True,
        spectrum_method="fft",
        **kwargs,
    ):
        # Features stay float32 under mixed precision: log-mel values
        # lose too much in bfloat16.
        kwargs["dtype"] = "float32"
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if int(max_length) < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}.")
        if float(std) <= 0:
            raise ValueError(f"std must be positive, got {std}.")
        if spectrum_method not in SPECTRUM_METHODS:
            raise ValueError(
                "spectrum_method must be 'fft' or 'matmul', got "
                f"{spectrum_method!r}."
            )
        self.sampling_rate = int(sampling_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.max_length = int(max_length)
        self.mean = float(mean)
        self.std = float(std)
        self.do_normalize = bool(do_normalize)
        # Host constants, fetched once so compilers see plain arrays.
        self._fft_window = np.pad(
            kaldi.hann_window(), (0, kaldi.FFT_LENGTH - kaldi.FRAME_LENGTH))
        self._dft = kaldi.windowed_dft_matrix()
        self.spectrum_method = spectrum_method
        self._compiled_fn = None  # made by the first compiled call
        self._filters = kaldi.mel_filter_bank(self.num_mel_bins,
                                              self.sampling_rate)
        self.built = True

    @property
    def num_samples(self):
        """Samples that fill `max_length` frames; later samples are unused."""
        return kaldi.FRAME_LENGTH + kaldi.FRAME_SHIFT * (self.max_length - 1)

    @property
    def _padded_samples(self):
        """The whole hops `call` pads or cuts every clip to (a few more
        than `num_samples`: the frames are views of 160-sample hops)."""
        return kaldi.FRAME_SHIFT * (self.max_length + 2)

    def __call__(self, waveforms, lengths=None, sampling_rate=None, **kwargs):
        if sampling_rate is not None and int(sampling_rate) != (
            self.sampling_rate
        ):
            raise ValueError(rate_error(sampling_rate, self.sampling_rate))
        if isinstance(waveforms, (list, tuple)) and len(waveforms) and (
            np.ndim(waveforms[0]) == 1
        ):
            if lengths is not None:
                raise ValueError(
                    "Pass either a list of clips or `lengths`, not both."
                )
            waveforms, lengths = pad_waveforms(waveforms)
        if isinstance(waveforms, (np.ndarray, list, tuple)):
            waveforms = check_waveforms(waveforms)
        elif is_traced(waveforms):
            return super().__call__(waveforms, lengths=lengths, **kwargs)
        else:
            self._check_tensor(waveforms)
        compile_function = compiler.compiler()
        if compile_function is not None:
            return self._compiled_call(compile_function, waveforms, lengths)
        return super().__call__(waveforms, lengths=lengths, **kwargs)

    def _compiled_call(self, compile_function, waveforms, lengths):
        """An eager call, run as one compiled computation.

        Op-by-op dispatch costs JAX and TensorFlow most of the time of a
        call on a batch of clips; compiled, the whole converter is a few
        fused loops. Host batches are first padded or cut to the samples
        `max_length` frames use (the rest is never read), with their true
        `lengths`, so one compilation serves every clip length and only a
        new batch size compiles again (cached by `jax.jit` and by the
        `tf.function`).
        """
        if isinstance(waveforms, np.ndarray):
            if waveforms.ndim == 1:
                waveforms = waveforms[None, :]
                if lengths is not None:
                    lengths = np.reshape(lengths, (1,))
            batch, samples = waveforms.shape
            if lengths is None:
                lengths = np.full((batch,), samples, np.int32)
            used = self._padded_samples
            if samples >= used:
                waveforms = waveforms[:, :used]
            else:
                waveforms = np.pad(waveforms, [(0, 0), (0, used - samples)])
            lengths = np.minimum(np.asarray(lengths, np.int64), used)
            lengths = lengths.astype(np.int32)
        if self._compiled_fn is None:
            self._compiled_fn = compile_function(self.call)
        if lengths is None:
            return self._compiled_fn(waveforms)
        return self._compiled_fn(waveforms, lengths)

    def _check_tensor(self, waveforms):
        if len(waveforms.shape) not in (1, 2):
            check_waveforms(np.zeros(tuple(waveforms.shape), np.float32))
        if not bool(ops.all(ops.isfinite(waveforms))):
            check_waveforms(ops.convert_to_numpy(waveforms))

    def call(self, waveforms, lengths=None):
        waveforms = ops.cast(waveforms, "float32")
        if len(waveforms.shape) == 1:
            waveforms = waveforms[None, :]
            if lengths is not None:
                lengths = ops.reshape(lengths, (1,))
        if len(waveforms.shape) != 2:
            raise ValueError(
                "Expected mono waveforms of shape (batch, samples) or "
                f"(samples,), got shape {waveforms.shape}."
            )
        # Pad and cut every clip to exactly the samples `max_length` frames
        # use: shapes are static from here on, whatever the input length.
        shift = kaldi.FRAME_SHIFT
        hops = self.max_length + 2
        used = self._padded_samples
        samples = waveforms.shape[1]
        static = lengths is None and isinstance(samples, int)
        if static:
            # All samples valid and the length known: no masks to build.
            if samples < used:
                waveforms = ops.pad(waveforms, [[0, 0], [0, used - samples]])
            padded = waveforms[:, :used]
        else:
            if lengths is None:
                # Counted rather than read from the shape so that a
                # symbolic sample dimension (exported with any length)
                # stays symbolic.
                lengths = ops.sum(ops.ones_like(waveforms), axis=1)
            lengths = ops.cast(lengths, "int32")
            padded = ops.pad(waveforms, [[0, 0], [0, used]])[:, :used]
            positions = ops.arange(used, dtype="int32")
            padded = ops.where(positions[None, :] < lengths[:, None],
                               padded, 0.0)

        # Pre-emphasis on the whole signal, then frames of 400 = 160 + 160
        # + 80 samples from three shifted views of 160-sample hops (no
        # gather, no frame loop). Inside a frame this is the reference's
        # per-frame filter except at the frame's first sample, which the
        # symmetric Hann window zeroes (w[0] = 0) before any use.
        previous = ops.pad(padded[:, :-1], [[0, 0], [1, 0]])
        emphasised = padded - kaldi.PREEMPHASIS * previous
        chunks = ops.reshape(emphasised, (-1, hops, shift))
        tail = kaldi.FRAME_LENGTH - 2 * shift
        length = self.max_length
        pieces = [chunks[:, :length], chunks[:, 1 : length + 1],
                  chunks[:, 2 : length + 2, :tail]]
        if self.spectrum_method == "fft":
            # The FFT's zero padding joins the frames here, in the one
            # copy that makes them, rather than in a second copy by rfft.
            pieces.append(ops.zeros_like(
                chunks[:, :length, : kaldi.FFT_LENGTH - kaldi.FRAME_LENGTH]))
        frames = ops.concatenate(pieces, axis=-1)
        # DC removal: the filter of (x - mean) is filter(x) - 0.03 * mean
        # (first sample aside, as above). Frame means come from per-hop
        # sums of the raw signal, a fraction of the work of the frames'.
        raw = ops.reshape(padded, (-1, hops, shift))
        sums = ops.sum(raw, axis=-1)
        tails = ops.sum(raw[:, 2 : length + 2, :tail], axis=-1)
        means = (sums[:, :length] + sums[:, 1 : length + 1] + tails) / (
            kaldi.FRAME_LENGTH)
        frames = frames - (1.0 - kaldi.PREEMPHASIS) * means[..., None]
        mel = self._mel_energies(frames)
        features = ops.log(ops.maximum(mel, kaldi.LOG_FLOOR))

        # Frames past each clip's end are the reference's zero padding.
        if static:
            valid = max(1, 1 + (samples - kaldi.FRAME_LENGTH) // shift)
            if valid < self.max_length:
                features = ops.pad(features[:, :valid],
                                   [[0, 0], [0, self.max_length - valid],
                                    [0, 0]])
        else:
            full = 1 + (lengths - kaldi.FRAME_LENGTH) // shift
            valid = ops.where(lengths < kaldi.FRAME_LENGTH, 1, full)
            frame_index = ops.arange(self.max_length, dtype="int32")
            mask = frame_index[None, :] < valid[:, None]
            features = ops.where(mask[:, :, None], features, 0.0)
        if self.do_normalize:
            features = (features - self.mean) / (2.0 * self.std)
        return features

    def _mel_energies(self, frames):
        """Mel filter energies of the power spectrum of pre-emphasised frames.

        The frames' first samples are not read (the window zeroes them).

        The spectrum is the 512-point DFT of each windowed frame: an FFT
        (`ops.rfft` of the zero-padded frames), or with `spectrum_method
        = "matmul"` one product with a `(400, 514)` table (window, cosines
        and sines), which every exporter can write.
        """
        filters = ops.convert_to_tensor(self._filters)
        if self.spectrum_method == "matmul":
            # The tables go through a select on the data that always keeps
            # them (it is false only for a NaN sample, whose features are
            # NaN anyway). Converters then keep them as float32 data:
            # folded into the products as weights, LiteRT's dynamic-range
            # quantization would cut them, and the power spectrum, to 8 bits.
            sample = frames[0, :1, :1]
            keep = ops.equal(sample, sample)
            dft = ops.where(keep, ops.convert_to_tensor(self._dft), 0.0)
            filters = ops.where(keep, filters, 0.0)
            spectrum = ops.matmul(frames, dft)
            real, imag = spectrum[..., :_NUM_BINS], spectrum[..., _NUM_BINS:]
        else:
            # Frames come zero-padded to the FFT's length; so is the window
            # (which also zeroes what the DC removal put in the padding).
            frames = frames * ops.convert_to_tensor(self._fft_window)
            real, imag = ops.rfft(frames, fft_length=kaldi.FFT_LENGTH)
        return ops.matmul(real * real + imag * imag, filters)

    def compute_output_shape(self, waveforms_shape, lengths_shape=None):
        batch = waveforms_shape[0] if len(waveforms_shape) == 2 else 1
        return (batch, self.max_length, self.num_mel_bins)

    def compute_output_spec(self, waveforms, lengths=None):
        shape = self.compute_output_shape(waveforms.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sampling_rate": self.sampling_rate,
                "num_mel_bins": self.num_mel_bins,
                "max_length": self.max_length,
                "mean": self.mean,
                "std": self.std,
                "do_normalize": self.do_normalize,
                "spectrum_method": self.spectrum_method,
            }
        )
        return config

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Builds the converter a preset was trained with.

        Args:
            preset: a built-in name (`ASTAudioConverter.presets`), a hub
                id (`owner/repo` or `hf://owner/repo`) or a local directory
                in the Hugging Face format (`preprocessor_config.json`) or
                a model preset that `save_to_preset` wrote the converter
                into.
            **kwargs: overrides of the stored arguments (e.g. `max_length`).

        Returns:
            An `ASTAudioConverter`.

        Raises:
            FileNotFoundError: as `ASTBackbone.from_preset`: no such preset,
                or a folder without the model's `config.json`.
            ValueError: as `ASTBackbone.from_preset`: a `config.json` that
                is no AST config.

        Examples:
            ```python
            converter = keras_ast.ASTAudioConverter.from_preset(
                "ast_speech_commands_v2")
            ```
        """
        config = preset_io.load_preset(preset).converter_config()
        config.update(kwargs)
        return cls(**config)

    def save_to_preset(self, preset_dir):
        """Writes this converter's configuration into `preset_dir`.

        Args:
            preset_dir: an existing folder, e.g. a backbone preset.
        """
        preset_io.save_converter_config(self, preset_dir)


def task_features(inputs, preprocessor, task="model"):
    """The features of what a task model (`ASTClassifier`,
    `ASTPretrainer`) is called with.

    Args:
        inputs: waveforms `(batch, samples)` where there is a
            `preprocessor`, else features `(batch, max_length,
            num_mel_bins)`; or a dict `{"waveforms": ..., "lengths": ...}`
            (`lengths` optional) or `{"features": ...}`.
        preprocessor: the task's `ASTAudioConverter`, or None.
        task: what the model is, for the error message.

    Returns:
        The features, as the preprocessor makes them or as given.

    Raises:
        ValueError: a dict with other keys, or waveforms without a
            preprocessor.
    """
    if isinstance(inputs, dict):
        unknown = set(inputs) - {"waveforms", "lengths", "features"}
        if unknown:
            raise ValueError(
                f"Unknown input keys {sorted(unknown)}; expected "
                "'waveforms' (and optionally 'lengths') or 'features'.")
        if "features" in inputs:
            return inputs["features"]
        waveforms, lengths = inputs["waveforms"], inputs.get("lengths")
    elif preprocessor is None:
        return inputs
    else:
        waveforms, lengths = inputs, None
    if preprocessor is None:
        raise ValueError(
            f"This {task} has no preprocessor: give it features "
            "(batch, max_length, num_mel_bins), not waveforms.")
    return preprocessor(waveforms, lengths=lengths)


def check_preprocessor(preprocessor, backbone):
    """Raises ValueError unless `preprocessor` (or None) makes the features
    `backbone` takes: the same `max_length` and `num_mel_bins`."""
    if preprocessor is None:
        return
    mismatch = [name for name in ("max_length", "num_mel_bins")
                if getattr(preprocessor, name) != getattr(backbone, name)]
    if mismatch:
        raise ValueError(
            "The preprocessor and the backbone disagree on "
            + ", ".join(f"{name} ({getattr(preprocessor, name)} vs "
                        f"{getattr(backbone, name)})" for name in mismatch))
