"""Preset directories: the published checkpoints, reading, writing, converting, uploading."""
