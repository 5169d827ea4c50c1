"""The report as one self-contained HTML page: every block of a `Doc` rendered by the
maintained `markdown` library, figures embedded as data URIs, verdicts coloured."""

from __future__ import annotations

import base64
import html

import markdown as md_lib

from cvgr.experiments.report.document import Doc
from cvgr.experiments.report.verdicts import HOLDS, NOT_HOLD

__all__ = ["CSS", "html_page"]

CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
       "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
       "text-align:right}blockquote{color:#555;border-left:3px solid #ccc;margin-left:0;"
       "padding-left:1em}.verdict.ok{color:#176117}.verdict.bad{color:#a11}"
       ".verdict.meh{color:#8a6d00}img{max-width:100%}code{background:#f4f4f4}")
"""The page's style sheet: verdicts green (holds), red (does not hold) or amber (otherwise)."""


def html_page(doc: Doc, title: str) -> str:
    """One page, figures embedded as data URIs; every block rendered by `markdown`."""
    parts = []
    for block, status in doc.blocks:
        for target, png in doc.images.items():
            if block.endswith(f"]({target})"):
                data = base64.b64encode(png.read_bytes()).decode()
                block = block.replace(f"]({target})", f"](data:image/png;base64,{data})")
        body = md_lib.markdown(block, extensions=["tables"], output_format="html")
        if status is not None:
            cls = {HOLDS: "ok", NOT_HOLD: "bad"}.get(status, "meh")
            body = f"<div class='verdict {cls}'>{body}</div>"
        parts.append(body)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(parts)
            + "\n</body></html>\n")
