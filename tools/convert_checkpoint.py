"""Converts an AST checkpoint into a keras_ast preset directory.

The same command as `keras-ast convert` (see `keras_ast.porting.convert`
and `--help`), kept under this documented name:

    python tools/convert_checkpoint.py \\
        --source MIT/ast-finetuned-speech-commands-v2 --output ast_sc --verify
"""

import sys

from keras_ast.porting.convert import main

if __name__ == "__main__":
    sys.exit(main())
