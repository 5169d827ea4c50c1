"""The one exception type the CLI turns into a one-line message instead of a traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (file, option, dataset): the message says what and how to fix it.

    `param` names the offending parameter as the core calls it (``lr``, ``jobs``, ``out``); the
    command line maps it to its flag (cvgr.cli._common), so no core message names a flag.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def __reduce__(self) -> tuple:  # keep `param` across processes (the job runner's pool)
        return (self.__class__, self.args, {"param": self.param})
