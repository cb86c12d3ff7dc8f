"""Presets: the published checkpoints; reading, writing, converting them."""
