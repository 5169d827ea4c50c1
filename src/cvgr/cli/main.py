"""The `cvgr` entry point: the parser built from every subcommand module, and `main`, which
runs one command and turns its errors into one line on stderr and an exit code (see the
package docstring)."""


from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

from cvgr.cli._common import error_text
from cvgr.errors import CvgrError
from cvgr.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvgr",
        description="Gradient-regularized complex-valued networks: train, attack, reproduce.",
        epilog="Every command: results on stdout (--json: one JSON document), progress on stderr "
               "(--quiet: none). Exit codes: 0 ok, 2 usage error, 1 error at run time, "
               "130 interrupted (docs/cli.md).",
    )
    parser.add_argument("-V", "--version", action="version", version=f"cvgr {__version__}")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE",
                        help="import a module (dotted name) or a .py file first, e.g. one that "
                             "registers your own architectures; repeatable. This RUNS THE "
                             "FILE'S CODE with your permissions: import only code you trust "
                             "(cvgr never runs code from weights, records or data files)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"cvgr.cli.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not _stdout_open():  # `cvgr ... >&-`: the result could not be printed; no work
        print(f"cvgr {args.command}: error: stdout is closed; the result could not be printed "
              "(redirect it, e.g. >/dev/null)", file=sys.stderr)
        return 1
    try:
        if args.imports:
            from cvgr.models import import_models

            import_models(args.imports)
        return int(args.func(args) or 0)
    except CvgrError as e:  # UserError (2) or RunError (1): the type carries the exit code
        print(f"cvgr {args.command}: error: {error_text(e)}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # stdout closed early (`cvgr ... | head`): no message to write
        _silence_stdout()
        return 1
    except OSError as e:  # a read or write failed at run time
        where = f"{e.filename}: " if e.filename else ""
        print(f"cvgr {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cvgr {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130


def _stdout_open() -> bool:
    """Whether stdout exists (Python sets it to None when the descriptor is closed)."""
    return sys.stdout is not None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured)
        pass


if __name__ == "__main__":
    sys.exit(main())
