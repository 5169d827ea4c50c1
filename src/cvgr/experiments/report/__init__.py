"""The report: each of the paper's claims, the figure or table that tests it, and a verdict.

`collect` (collection) gathers the raw numbers of a reproduction directory into one
JSON-ready dict; `verdicts` (verdicts) judges each claim of the one table `CLAIMS`, collected
from the claim modules of `claims` (one per part of the report), from those numbers alone
(pure functions, testable on synthetic results); `write_report` (rendering) draws the figures
(figures), builds the document (document, with one section each from sections) and writes
report.md, report.html (html_page: self-contained, figures embedded, rendered by the
`markdown` library) and results.json.
"""

from cvgr.experiments.report.collection import collect
from cvgr.experiments.report.rendering import SECTIONS, summary_markdown, write_report
from cvgr.experiments.report.verdicts import (
    CLAIMS,
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLD,
    NOT_MEASURED,
    Claim,
    Verdict,
    accuracy_margin,
    curve_at,
    curve_mean,
    sweep_points,
    time_ratios,
    verdict_approaches,
    verdict_beats,
    verdict_frontier,
    verdict_identity,
    verdict_masking,
    verdict_sizes,
    verdict_time,
    verdict_transfer,
    verdicts,
)

__all__ = ["CLAIMS", "HOLDS", "INCONCLUSIVE", "NOT_HOLD", "NOT_MEASURED", "SECTIONS", "Claim",
           "Verdict", "accuracy_margin", "collect", "curve_at", "curve_mean", "summary_markdown",
           "sweep_points", "time_ratios", "verdict_approaches", "verdict_beats",
           "verdict_frontier", "verdict_identity", "verdict_masking", "verdict_sizes",
           "verdict_time", "verdict_transfer", "verdicts", "write_report"]
