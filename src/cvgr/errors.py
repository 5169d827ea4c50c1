"""The exceptions the CLI turns into a one-line message instead of a traceback.

Exit codes of `cvgr` follow the exception's type (its ``exit_code``):

- 2, usage error: argparse's own errors and `UserError` -- an option, file or dataset the user
  named is wrong (bad value, missing file, unknown name); fix the command line and rerun.
- 1, error at run time: `RunError` (training diverged, a checkpoint is corrupt or does not fit)
  and `OSError` (a read or write failed) -- the command was right, the work failed.
"""

from __future__ import annotations


class CvgrError(Exception):
    """An error the command line shows in one line; its type carries the exit code.

    `param` names the offending parameter as the core calls it (``lr``, ``jobs``, ``out``); the
    command line maps it to its flag (cvgr.cli._common), so no core message names a flag.
    """

    exit_code = 1

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def __reduce__(self) -> tuple:  # keep `param` across processes (the job runner's pool)
        return (self.__class__, self.args, {"param": self.param})


class UserError(CvgrError, ValueError):
    """Bad input from the user (file, option, dataset): the message says what and how to fix it
    (exit code 2)."""

    exit_code = 2


class RunError(CvgrError):
    """Work that failed at run time (diverged training, corrupt checkpoint, failed download):
    the command was right, the work failed (exit code 1). Not a `UserError`: code that handles
    bad input does not swallow it."""

    exit_code = 1
