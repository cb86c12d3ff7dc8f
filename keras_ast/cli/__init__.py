"""The `keras-ast` command: one module per command."""
