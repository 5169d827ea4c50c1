"""Each of the paper's claims, judged from the collected numbers alone (pure functions).

Verdicts are "holds", "does not hold" or "inconclusive" (or "not measured" when a job
failed), always with the numbers. Differences of accuracy count only beyond a margin of
max(0.02, 1/sqrt(n)) for n test images, about two binomial standard errors at 50%.

`CLAIMS` is the one table of claims, collected from the modules of
`cvgr.experiments.report.claims` (one per part of the report): its order is the report's, each
entry's `judge` makes the verdict stored under its `key`, and `section` says which part of the
report shows it. The claim modules' public names are re-exported here.
"""

from __future__ import annotations

from cvgr.experiments.report.claims import frontier, masking, models, robustness, timing, transfer
from cvgr.experiments.report.claims.core import (
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLD,
    NOT_MEASURED,
    Claim,
    Results,
    Verdict,
    accuracy_margin,
    curve_at,
    curve_mean,
    curve_of,
)
from cvgr.experiments.report.claims.frontier import sweep_points, verdict_frontier
from cvgr.experiments.report.claims.masking import aa_label, verdict_masking
from cvgr.experiments.report.claims.models import verdict_identity, verdict_sizes
from cvgr.experiments.report.claims.robustness import verdict_approaches, verdict_beats
from cvgr.experiments.report.claims.timing import (
    MODEST_OVERHEAD,
    TIME_KEYS,
    TIME_MARGIN,
    time_hardware,
    time_ratios,
    time_seconds,
    verdict_time,
)
from cvgr.experiments.report.claims.transfer import verdict_transfer

__all__ = ["CLAIMS", "HOLDS", "INCONCLUSIVE", "MODEST_OVERHEAD", "NOT_HOLD", "NOT_MEASURED",
           "TIME_KEYS", "TIME_MARGIN", "Claim", "Results", "Verdict", "aa_label",
           "accuracy_margin", "curve_at", "curve_mean", "curve_of", "sweep_points",
           "time_hardware", "time_ratios", "time_seconds", "verdict_approaches",
           "verdict_beats", "verdict_frontier", "verdict_identity", "verdict_masking",
           "verdict_sizes", "verdict_time", "verdict_transfer", "verdicts"]

CLAIMS: tuple[Claim, ...] = (*models.CLAIMS, *robustness.CLAIMS, *frontier.CLAIMS,
                             *transfer.CLAIMS, *timing.CLAIMS, *masking.CLAIMS)
"""Every claim, in the report's order: each claim module's own, section by section."""


def verdicts(res: Results) -> dict[str, Verdict]:
    """Every claim's verdict, computed from the collected numbers alone."""
    return {c.key: c.judge(res) for c in CLAIMS}
