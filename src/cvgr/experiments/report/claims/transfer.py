"""The transfer claims (seed Figures 2-3): among independently seeded GR nets, white-box PGD is
the strongest attack on each, and their white-box robustness agrees across seeds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cvgr.experiments.report.claims.core import (
    HOLDS,
    NOT_HOLD,
    NOT_MEASURED,
    Claim,
    Results,
    Verdict,
    accuracy_margin,
    make_verdict,
)

__all__ = ["CLAIMS", "verdict_transfer"]


def verdict_transfer(matrix: Mapping[str, Any], tolerance: float | None = None
                     ) -> tuple[Verdict, Verdict]:
    """(white-box is the strongest attack on each net, white-box robustness agrees across seeds)."""
    names, acc, n = matrix["sources"], matrix["accuracy"], int(matrix.get("n_images", 0))
    tol = accuracy_margin(n) if tolerance is None else tolerance
    diag = [acc[i][i] for i in range(len(names))]
    worse = []
    for j, t in enumerate(names):
        off = [acc[i][j] for i in range(len(names)) if i != j]
        if off and min(off) < diag[j] - tol:
            worse.append(f"{names[[acc[i][j] for i in range(len(names))].index(min(off))]}->{t}"
                         f" {min(off):.3f} < white-box {diag[j]:.3f}")
    wb = ", ".join(f"{t} {d:.3f}" for t, d in zip(names, diag, strict=True))
    off_all = [acc[i][j] for i in range(len(names)) for j in range(len(names)) if i != j]
    off_txt = (f"; transferred: {min(off_all):.3f}..{max(off_all):.3f}" if off_all else "")
    if worse:
        strongest = make_verdict(NOT_HOLD, "a transfer attack beat white-box (possible "
                                 "masking): " + "; ".join(worse))
    else:
        strongest = make_verdict(HOLDS, f"white-box accuracy {wb}{off_txt} (tolerance {tol:.3f})")
    spread = max(diag) - min(diag)
    consistent = make_verdict(HOLDS if spread <= tol else NOT_HOLD,
                              f"white-box accuracy across seeds {wb}: spread {spread:.3f} "
                              f"(margin {tol:.3f})")
    return strongest, consistent


def _transfer(which: int) -> Callable[[Results], Verdict]:
    def judge(res: Results) -> Verdict:
        tm = res["evaluations"].get("eval-transfer")
        if not tm:
            return make_verdict(NOT_MEASURED, "the transfer matrix did not run")
        return verdict_transfer(tm)[which]
    return judge


CLAIMS: tuple[Claim, ...] = (
    Claim("transfer_whitebox_strongest", "white-box strongest (Fig. 2-3)", "transfer",
          _transfer(0), "white-box strongest"),
    Claim("transfer_consistent", "consistent across seeds (Fig. 2-3)", "transfer",
          _transfer(1), "consistent across seeds"),
)
