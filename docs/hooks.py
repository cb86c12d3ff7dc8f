"""MkDocs hooks of the keras_ast site (see mkdocs.yml `hooks:`)."""
