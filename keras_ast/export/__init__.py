"""Exports with the spectrogram inside: SavedModel, ONNX, LiteRT."""
