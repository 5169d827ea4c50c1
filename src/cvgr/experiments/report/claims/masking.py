"""The masking claims: the robustness of each GR net is not gradient masking (no masking
symptom, and AutoAttack not far below our PGD(8))."""

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

__all__ = ["CLAIMS", "aa_label", "verdict_masking"]


def aa_label(aa: Mapping[str, Any]) -> str:
    """Which AutoAttack version ran, e.g. 'AutoAttack standard' or
    'AutoAttack custom (apgd-ce 20 steps, square 100 queries)'."""
    version = aa.get("version", "art")
    if version != "custom":
        return f"AutoAttack {version}"
    parts = []
    for a in aa.get("attacks", []):
        st = a.get("settings", {})
        n = st.get("n_iter", st.get("steps"))
        q = st.get("n_queries", st.get("queries"))
        parts.append(f"{a['attack']} {n} steps" if n is not None else
                     f"{a['attack']} {q} queries" if q is not None else a["attack"])
    return "AutoAttack custom (" + ", ".join(parts) + ")"


def verdict_masking(masking: Mapping[str, Any] | None, aa: Mapping[str, Any] | None,
                    n: int) -> Verdict:
    """No masking symptom and AutoAttack not far below our PGD(8): the robustness is real."""
    if masking is None and aa is None:
        return make_verdict(NOT_MEASURED, "checks did not run")
    parts, bad = [], []
    if masking is not None:
        flags = list(masking.get("flagged", []))
        bad += flags
        parts.append("masking flags: " + (", ".join(flags) if flags else "none"))
    if aa is not None:
        if "skipped" in aa:
            parts.append(f"AutoAttack skipped ({aa['skipped']})")
        else:
            m = accuracy_margin(int(aa.get("n_images", n)))
            gap = aa["pgd_accuracy"] - aa["robust_accuracy"]
            parts.append(f"PGD(8) {aa['pgd_accuracy']:.3f} vs {aa_label(aa)} "
                         f"{aa['robust_accuracy']:.3f} (gap {gap:+.3f}, margin {m:.3f})")
            if gap > m:
                bad.append("autoattack_far_below_pgd")
    text = "; ".join(parts)
    if bad:
        return make_verdict(NOT_HOLD, text + f" => flagged: {', '.join(bad)}")
    return make_verdict(HOLDS, text)


def _masking(kind: str) -> Callable[[Results], Verdict]:
    def judge(res: Results) -> Verdict:
        ev = res["evaluations"]
        return verdict_masking(ev.get(f"eval-masking-{kind}-gr"),
                               ev.get(f"eval-autoattack-{kind}-gr"), int(res["n_images"]))
    return judge


CLAIMS: tuple[Claim, ...] = (
    Claim("masking_complex_gr", "no gradient masking, complex GR", "masking",
          _masking("complex"), "complex GR"),
    Claim("masking_real_gr", "no gradient masking, real GR", "masking", _masking("real"),
          "real GR"),
)
