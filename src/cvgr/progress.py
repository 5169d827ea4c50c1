"""Progress bars and progress messages: the one place that decides whether they are shown.

Both go to stderr, so stdout carries only results (e.g. `cvgr ... --json`). A bar is drawn only
when the caller wants one *and* stderr is a terminal: redirected to a file or a pipe (CI, logs,
`2> log`), there is no bar, and no carriage-return litter.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeAlias

from tqdm import tqdm

__all__ = ["Bar", "bar", "enabled", "note"]

Bar: TypeAlias = tqdm  # the type `bar` returns


def enabled(wanted: bool = True) -> bool:
    """Whether a bar is drawn: `wanted` and stderr (looked up now, not at import) is a tty."""
    stream = sys.stderr
    return bool(wanted) and stream is not None and hasattr(stream, "isatty") and stream.isatty()


def bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
        progress: bool = True, **kw: Any) -> Bar:
    """A tqdm bar on stderr that vanishes when done; disabled unless `enabled(progress)`."""
    kw.setdefault("leave", False)
    kw.setdefault("dynamic_ncols", True)
    return tqdm(iterable, total=total, desc=desc, disable=not enabled(progress),
                file=sys.stderr, **kw)


def note(message: str) -> None:
    """One progress message (an epoch's line, 'resuming ...') on stderr, above any live bar."""
    tqdm.write(message, file=sys.stderr)
