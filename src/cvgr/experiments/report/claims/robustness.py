"""Claims about white-box robustness: complex GR beats real GR under PGD(8) and FGSM, and
approaches real PGD-4 adversarial training."""

from __future__ import annotations

from collections.abc import Callable

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
    make_verdict,
)
from cvgr.names import Attack

__all__ = ["CLAIMS", "verdict_approaches", "verdict_beats"]


def verdict_beats(ours: float, theirs: float, n: int, what: str) -> Verdict:
    """`what` claims ours > theirs: holds beyond the margin, not below it, else inconclusive."""
    m, d = accuracy_margin(n), ours - theirs
    text = f"{what}: {ours:.3f} vs {theirs:.3f} (difference {d:+.3f}, margin ±{m:.3f}, n={n})"
    if d > m:
        return make_verdict(HOLDS, text)
    if d < -m:
        return make_verdict(NOT_HOLD, text)
    return make_verdict(INCONCLUSIVE, text)


def verdict_approaches(complex_gr: float, real_gr: float, real_at: float, n: int,
                       what: str = "PGD(8) accuracy", at_clean: float | None = None,
                       chance: float = 0.1) -> Verdict:
    """Complex GR "approaches" AT: within the margin of (or above) AT; no gain over real GR: not.

    An AT baseline whose clean accuracy is at chance did not learn (PGD AT at a large eps in a
    short run often does not): beating it says nothing, so the verdict is inconclusive.
    """
    m = accuracy_margin(n)
    text = (f"{what}: complex GR {complex_gr:.3f}, real GR {real_gr:.3f}, real PGD-4 AT "
            f"{real_at:.3f} (margin ±{m:.3f})")
    if at_clean is not None and at_clean <= chance + m:
        return make_verdict(INCONCLUSIVE, text + f"; the AT baseline did not learn (clean "
                            f"accuracy {at_clean:.3f}, chance {chance:.2f}): train longer or "
                            "with a smaller AT eps")
    if complex_gr >= real_at - m:
        return make_verdict(HOLDS, text)
    if complex_gr <= real_gr + m:
        return make_verdict(NOT_HOLD, text)
    closed = (complex_gr - real_gr) / (real_at - real_gr)
    return make_verdict(INCONCLUSIVE,
                        text + f"; complex GR closes {closed:.0%} of the GR-to-AT gap")


def _approaches(res: Results) -> Verdict:
    n = int(res["n_images"])
    c, r, a = (curve_of(res, Attack.PGD, k) for k in ("complex-gr", "real-gr", "real-pgd4"))
    eps_c = res["claim_eps"]
    cg, rg, at = (curve_at(x, eps_c) if x else None for x in (c, r, a))
    if cg is None or rg is None or at is None or a is None:
        return make_verdict(NOT_MEASURED, "a robustness curve is missing")
    at_clean = a["accuracy"][0] if a["eps"][0] == 0 else None
    return verdict_approaches(cg, rg, at, n, f"PGD(8) accuracy at eps {eps_c:g}",
                              at_clean=at_clean)


def _beats(attack: Attack, name: str) -> Callable[[Results], Verdict]:
    def judge(res: Results) -> Verdict:
        c, r = curve_of(res, attack, "complex-gr"), curve_of(res, attack, "real-gr")
        if not (c and r):
            return make_verdict(NOT_MEASURED, "a robustness curve is missing")
        return verdict_beats(curve_mean(c), curve_mean(r), int(res["n_images"]),
                             f"mean {name} accuracy over eps>0, complex GR vs real GR")
    return judge


CLAIMS: tuple[Claim, ...] = (
    Claim("pgd_complex_beats_real", "complex GR beats real GR, PGD", "robustness",
          _beats(Attack.PGD, "PGD(8)"), "PGD(8)"),
    Claim("fgsm_complex_beats_real", "complex GR beats real GR, FGSM", "robustness",
          _beats(Attack.FGSM, "FGSM"), "FGSM"),
    Claim("approaches_at", "complex GR approaches AT", "robustness", _approaches,
          "approaches AT"),
)
