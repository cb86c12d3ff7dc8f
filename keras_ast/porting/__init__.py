"""Checkpoints converted to presets, verified against `transformers`."""
