"""The Keras layers and models of AST."""
