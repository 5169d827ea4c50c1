"""Markdown text: the one table builder the docs, the zoo and the report share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["table"]


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: a header line, its rule and one line per row. A "|" inside a cell is
    escaped, so it cannot end the cell early.

        table(["model", "acc"], [["real", "0.91"]])
        # '| model | acc |\\n|---|---|\\n| real | 0.91 |'
    """
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(head), "|" + "---|" * len(head), *(line(r) for r in rows)])
