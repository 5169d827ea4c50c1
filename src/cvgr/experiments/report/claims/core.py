"""What every claim module shares: the verdict statuses and type, the `Claim` entry of the
claims table, the accuracy margin, and readers of the collected robustness curves.

Verdicts are "holds", "does not hold" or "inconclusive" (or "not measured" when a job
failed), always with the numbers. Differences of accuracy count only beyond a margin of
max(0.02, 1/sqrt(n)) for n test images, about two binomial standard errors at 50%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HOLDS", "INCONCLUSIVE", "NOT_HOLD", "NOT_MEASURED", "Claim", "Results", "Verdict",
           "accuracy_margin", "curve_at", "curve_mean", "curve_of", "make_verdict"]

HOLDS, NOT_HOLD, INCONCLUSIVE, NOT_MEASURED = ("holds", "does not hold", "inconclusive",
                                               "not measured")
Verdict = dict[str, str]
Results = Mapping[str, Any]


def make_verdict(status: str, text: str) -> Verdict:
    """A verdict: its status (HOLDS, NOT_HOLD, INCONCLUSIVE or NOT_MEASURED) and the numbers
    behind it, as text."""
    return {"status": status, "text": text}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: the verdict `key` in results.json, its `name` in the verdict
    table, the `section` of the report that shows its evidence, the label `what` of its
    verdict line there, and the `judge` that decides it from the collected numbers."""

    key: str
    name: str
    section: str
    judge: Callable[[Results], Verdict]
    what: str = ""


def accuracy_margin(n: int) -> float:
    """Smallest accuracy difference taken as real for n images (about 2 standard errors)."""
    return max(0.02, 1.0 / math.sqrt(max(n, 1)))


def curve_mean(curve: Mapping[str, Any]) -> float:
    """Mean accuracy over the curve's eps > 0 (the area under the curve, normalised)."""
    accs = [a for e, a in zip(curve["eps"], curve["accuracy"], strict=True) if e > 0]
    return sum(accs) / len(accs) if accs else float("nan")


def curve_at(curve: Mapping[str, Any], eps: float) -> float | None:
    """The curve's accuracy at `eps`, None if the curve has no point there."""
    for e, a in zip(curve["eps"], curve["accuracy"], strict=True):
        if abs(e - eps) < 1e-9:
            return a
    return None


def curve_of(res: Results, attack: str, label: str) -> dict[str, Any] | None:
    """The collected robustness curve of model `label` under `attack`, None if it did not run."""
    return res["evaluations"].get(f"eval-{attack}-{label}")
