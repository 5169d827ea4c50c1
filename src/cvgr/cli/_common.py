"""Conventions and options shared by the subcommands.

- stdout carries the result only: a human-readable summary, or with ``--json`` exactly one
  JSON document (`emit`). Everything else -- progress bars, progress messages such as
  "wrote FILE", warnings -- goes to stderr (`note`).
- ``--quiet`` silences progress bars and progress messages, never the result or an error.
  Bars are also off whenever stderr is not a terminal (`cvgr.progress`).
- Errors: the core raises `cvgr.errors.UserError` (exit 2) or `RunError` (exit 1) naming the
  parameter; `cli.main` prints them in one line, the parameter mapped to its flag (`error_text`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from typing import Any

from cvgr.errors import CvgrError
from cvgr.io import to_json


def add_quiet(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or progress messages (results and errors are "
                             "still printed)")


def add_json(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON document on stdout, nothing else")


def add_output(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--json and --quiet: for every command that produces numbers."""
    add_json(parser)
    add_quiet(parser)


def add_allow_unfinished(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--allow-unfinished: evaluate the weights of a run that stopped or diverged."""
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="use the weights of a run that has not finished (stopped or "
                             "diverged); refused without it. The result records the epoch")


def add_data_root(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="where the dataset files are (DIR/NAME or DIR itself; default: "
                             "$CVGR_DATA, then the caches, see `cvgr data list`)")


def note(args: argparse.Namespace, message: str) -> None:
    """A progress message on stderr ('wrote FILE'); silent with --quiet."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, doc: Any, lines: Iterable[str] = ()) -> None:
    """The command's result on stdout: `doc` as one JSON document with --json, else `lines`."""
    if getattr(args, "json", False):
        print(to_json(doc, indent=None))  # one line: easy to pipe, log or append
    else:
        for line in lines:
            print(line)
    sys.stdout.flush()


# A core parameter whose flag is not "--" + its name with "-" for "_".
FLAGS = {"workers": "--jobs", "shared_fs": "--ray-shared-fs",
         "max_retries": "--ray-retries", "num_cpus": "--ray-cpus", "imports": "--import",
         "source": "--from", "cpus_per_job": "--cpus-per-job",
         "address": "--ray-address", "model": "MODEL"}


def flag(param: str) -> str:
    """The command-line flag of a core parameter: batch_size -> --batch-size."""
    return FLAGS.get(param, "--" + param.replace("_", "-"))


def error_text(error: CvgrError) -> str:
    """A core error in the command line's words: its parameter becomes the flag.

    The core names parameters as Python calls them (`UserError.param`); a message that starts
    with the parameter gets the flag in its place, any other gets the flag appended.
    """
    text, param = str(error), getattr(error, "param", None)
    if not param or param.startswith("-"):
        return text
    if re.match(rf"{re.escape(param)}\b", text):
        return flag(param) + text[len(param):]
    return f"{text} ({flag(param)})"


def add_gr_step(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--gr-step: how the exact/reference GR step runs (:mod:`cvgr.defenses.gr_step`)."""
    from cvgr.defenses.gr_step import GR_STEPS

    parser.add_argument("--gr-step", default="auto", choices=GR_STEPS,
                        help="how the exact/reference GR step runs, same objective: eager "
                             "autograd, one traced graph, or that graph compiled by "
                             "torch.compile (fastest on CPU; compiles about a minute per run, "
                             "needs a C++ compiler); auto (default): eager for epochs under 100 "
                             "batches, compiled for runs of >= 5000 batches on a CPU with a "
                             "compiler, else traced")


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N or mps (default: cuda when present, else cpu)")


__all__ = ["FLAGS", "add_allow_unfinished", "add_data_root", "add_device", "add_json",
           "add_output", "add_quiet", "emit", "error_text", "flag", "note"]
