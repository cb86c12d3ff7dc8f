"""Ready-made data sets for tutorials and tests."""
