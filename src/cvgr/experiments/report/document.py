"""The report as a list of Markdown blocks (`Doc`), what both of its renderings read:
report.md and summary.md join the blocks (`Doc.markdown`), report.html renders each
(`cvgr.experiments.report.html_page`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from cvgr.experiments.report.verdicts import Verdict
from cvgr.markdown import table as markdown_table

__all__ = ["Doc", "fmt"]


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: "-" for None or a non-finite number, yes/no, thousands separators for
    whole numbers, `digits` decimals for floats."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


class Doc:
    """A list of Markdown blocks; verdict blocks also carry their status (for HTML colour)."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, str | None]] = []  # (markdown, verdict status or None)
        self.images: dict[str, Path] = {}  # markdown link target -> PNG file

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("#" * level + " " + text, None))

    def p(self, text: str) -> None:
        self.blocks.append((text, None))

    def claim(self, text: str) -> None:
        self.blocks.append((f"> **Paper's claim.** {text}", None))

    def verdict(self, v: Verdict, what: str = "") -> None:
        label = f" ({what})" if what else ""
        self.blocks.append((f"**Verdict{label}: {v['status']}** — {v['text']}", v["status"]))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append((markdown_table(headers, [[fmt(c) for c in r] for r in rows]), None))

    def img(self, path: Path | None, alt: str, base: Path) -> None:
        if path is not None:
            target = os.path.relpath(path, base)
            self.images[target] = Path(path)
            self.blocks.append((f"![{alt}]({target})", None))

    def markdown(self) -> str:
        """The whole document as Markdown (figures linked, relative to the report)."""
        return "\n\n".join(b for b, _ in self.blocks) + "\n"
