"""Converts an AST checkpoint into a keras_ast preset directory.

The same command as `keras-ast convert` (`keras_ast.cli.convert`; `--help`
lists the options), kept under this documented name:

    python tools/convert_checkpoint.py \\
        --source MIT/ast-finetuned-speech-commands-v2 --output ast_sc --verify
"""

import sys

from keras_ast.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
