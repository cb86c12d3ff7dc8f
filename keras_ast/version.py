"""The keras_ast version, read by pyproject.toml and written into presets."""

__version__ = "0.1.0"
