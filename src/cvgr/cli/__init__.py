"""`cvgr` command line: argument parsing only; every subcommand lives in its own module here.

A module of this package that defines ``register(subparsers)`` is a subcommand; it adds its
parser and sets ``func`` to a function taking the parsed arguments. The conventions every
subcommand follows (``--json``, ``--quiet``, where output goes) live in ``cli/_common.py``.

Exit codes: 0 success; 2 usage error (argparse, `UserError`); 1 error at run time (`RunError`
such as diverged training or a corrupt checkpoint, `OSError` from a failed read or write); 130
interrupted. The type of the exception decides (`cvgr.errors`); each error is one line on stderr.
"""

from cvgr.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
