"""Helpers with no model in them: atomic files, lazy imports, TensorFlow's
start-up logs."""
