"""The frontier claim (seed Figure 1): across a sweep of beta, the complex net's (GR loss,
CE loss) curve lies below the real net's."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cvgr.experiments.report.claims.core import (
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLD,
    NOT_MEASURED,
    Claim,
    Results,
    Verdict,
    make_verdict,
)

__all__ = ["CLAIMS", "sweep_points", "verdict_frontier"]


def _interp_log(points: Sequence[tuple[float, float]], g: float) -> float:
    """CE of the real curve at GR loss g, linear in log(GR loss) between neighbouring points."""
    pts = sorted(points)
    for (g0, c0), (g1, c1) in zip(pts, pts[1:], strict=False):
        if g0 <= g <= g1:
            if g1 == g0:
                return min(c0, c1)
            t = (math.log(g) - math.log(g0)) / (math.log(g1) - math.log(g0))
            return c0 + t * (c1 - c0)
    raise ValueError("outside the range")


def verdict_frontier(real: Sequence[tuple[float, float]],
                     complex_: Sequence[tuple[float, float]]) -> Verdict:
    """Does the complex (GR loss, CE loss) curve lie below the real one?

    Where the GR-loss ranges overlap, each complex point is compared with the real curve
    interpolated at its GR loss; without overlap, by Pareto dominance (lower in both).
    """
    real = [(g, c) for g, c in real if g > 0 and math.isfinite(g) and math.isfinite(c)]
    complex_ = [(g, c) for g, c in complex_ if g > 0 and math.isfinite(g) and math.isfinite(c)]
    if not real or not complex_:
        return make_verdict(NOT_MEASURED,
                            "no finite (GR loss, CE loss) points for one of the nets")
    lo, hi = min(g for g, _ in real), max(g for g, _ in real)
    diffs = [(g, c - _interp_log(real, g)) for g, c in complex_ if lo <= g <= hi] \
        if len(real) > 1 else []
    if diffs:
        text = "complex CE minus real CE at equal GR loss: " + ", ".join(
            f"{d:+.3f} (GR loss {g:.3g})" for g, d in diffs)
        if all(d < 0 for _, d in diffs):
            return make_verdict(HOLDS, text)
        if all(d > 0 for _, d in diffs):
            return make_verdict(NOT_HOLD, text)
        return make_verdict(INCONCLUSIVE, text + "; the curves cross")
    dominated = [c for c in complex_ if any(r[0] <= c[0] and r[1] <= c[1] for r in real)]
    dominates = [r for r in real if any(c[0] <= r[0] and c[1] <= r[1] for c in complex_)]
    text = (f"GR-loss ranges do not overlap (real {lo:.3g}..{hi:.3g}, complex "
            f"{min(g for g, _ in complex_):.3g}..{max(g for g, _ in complex_):.3g}); "
            f"{len(dominates)} real point(s) beaten in both losses by a complex one, "
            f"{len(dominated)} complex point(s) beaten by a real one")
    if not dominated and dominates:
        return make_verdict(HOLDS, text)
    if len(dominated) == len(complex_):
        return make_verdict(NOT_HOLD, text)
    return make_verdict(INCONCLUSIVE, text)


def sweep_points(res: Results, kind: str) -> list[tuple[float, float, float]]:
    """(beta, final GR loss, final CE loss) of each finished sweep run of `kind`."""
    out = []
    for tid in res["sweep"][kind]:
        t = res["training"].get(tid) or {}
        f = t.get("final") or {}
        if t.get("epochs_done", 0) < res["epochs"]:
            continue  # an unfinished run is not a point of the frontier
        if f.get("gr") is not None and f.get("ce") is not None:
            out.append((float(t["beta"]), float(f["gr"]), float(f["ce"])))
    return sorted(out)


def _frontier(res: Results) -> Verdict:
    pr = [(g, ce) for _, g, ce in sweep_points(res, "real")]
    pc = [(g, ce) for _, g, ce in sweep_points(res, "complex")]
    return verdict_frontier(pr, pc)


CLAIMS: tuple[Claim, ...] = (
    Claim("frontier", "complex frontier below (Fig. 1)", "frontier", _frontier),
)
