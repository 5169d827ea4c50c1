"""Each of the paper's claims, judged from the collected numbers alone (pure functions).

Verdicts are "holds", "does not hold" or "inconclusive" (or "not measured" when a job
failed), always with the numbers. Differences of accuracy count only beyond a margin of
max(0.02, 1/sqrt(n)) for n test images, about two binomial standard errors at 50%.

`CLAIMS` is the one table of claims: its order is the report's, each entry's `judge` makes
the verdict stored under its `key`, and `section` says which part of the report shows it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cvgr.names import Attack
from cvgr.paper import PAPER_TIME_RATIOS

__all__ = ["CLAIMS", "HOLDS", "INCONCLUSIVE", "MODEST_OVERHEAD", "NOT_HOLD", "NOT_MEASURED",
           "TIME_MARGIN", "Claim", "Verdict", "aa_label", "accuracy_margin", "curve_at",
           "curve_mean", "curve_of", "sweep_points", "time_hardware", "time_ratios",
           "time_seconds", "verdict_approaches", "verdict_beats", "verdict_frontier",
           "verdict_identity", "verdict_masking", "verdict_sizes", "verdict_time",
           "verdict_transfer", "verdicts"]

HOLDS, NOT_HOLD, INCONCLUSIVE, NOT_MEASURED = ("holds", "does not hold", "inconclusive",
                                               "not measured")
Verdict = dict[str, str]
Results = Mapping[str, Any]

MODEST_OVERHEAD = 2.0
"""A complex net's own training-time overhead counts as modest up to this ratio to the real
net (the paper's RTX 2070 Super table: 1.42, which its authors put down to an unoptimised
implementation)."""
TIME_MARGIN = 0.1
"""Relative timing noise (shared cores, other jobs): ratios closer than 10% are a tie."""


def _v(status: str, text: str) -> Verdict:
    return {"status": status, "text": text}


# -- numbers -------------------------------------------------------------------------------------

def accuracy_margin(n: int) -> float:
    """Smallest accuracy difference taken as real for n images (about 2 standard errors)."""
    return max(0.02, 1.0 / math.sqrt(max(n, 1)))


def curve_mean(curve: Mapping[str, Any]) -> float:
    """Mean accuracy over the curve's eps > 0 (the area under the curve, normalised)."""
    accs = [a for e, a in zip(curve["eps"], curve["accuracy"], strict=True) if e > 0]
    return sum(accs) / len(accs) if accs else float("nan")


def curve_at(curve: Mapping[str, Any], eps: float) -> float | None:
    for e, a in zip(curve["eps"], curve["accuracy"], strict=True):
        if abs(e - eps) < 1e-9:
            return a
    return None


# -- verdicts (pure) -----------------------------------------------------------------------------

def verdict_beats(ours: float, theirs: float, n: int, what: str) -> Verdict:
    """`what` claims ours > theirs: holds beyond the margin, not below it, else inconclusive."""
    m, d = accuracy_margin(n), ours - theirs
    text = f"{what}: {ours:.3f} vs {theirs:.3f} (difference {d:+.3f}, margin ±{m:.3f}, n={n})"
    if d > m:
        return _v(HOLDS, text)
    if d < -m:
        return _v(NOT_HOLD, text)
    return _v(INCONCLUSIVE, text)


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
        return _v(INCONCLUSIVE, text + f"; the AT baseline did not learn (clean accuracy "
                  f"{at_clean:.3f}, chance {chance:.2f}): train longer or with a smaller AT eps")
    if complex_gr >= real_at - m:
        return _v(HOLDS, text)
    if complex_gr <= real_gr + m:
        return _v(NOT_HOLD, text)
    closed = (complex_gr - real_gr) / (real_at - real_gr)
    return _v(INCONCLUSIVE, text + f"; complex GR closes {closed:.0%} of the GR-to-AT gap")


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
        return _v(NOT_MEASURED, "no finite (GR loss, CE loss) points for one of the nets")
    lo, hi = min(g for g, _ in real), max(g for g, _ in real)
    diffs = [(g, c - _interp_log(real, g)) for g, c in complex_ if lo <= g <= hi] \
        if len(real) > 1 else []
    if diffs:
        text = "complex CE minus real CE at equal GR loss: " + ", ".join(
            f"{d:+.3f} (GR loss {g:.3g})" for g, d in diffs)
        if all(d < 0 for _, d in diffs):
            return _v(HOLDS, text)
        if all(d > 0 for _, d in diffs):
            return _v(NOT_HOLD, text)
        return _v(INCONCLUSIVE, text + "; the curves cross")
    dominated = [c for c in complex_ if any(r[0] <= c[0] and r[1] <= c[1] for r in real)]
    dominates = [r for r in real if any(c[0] <= r[0] and c[1] <= r[1] for c in complex_)]
    text = (f"GR-loss ranges do not overlap (real {lo:.3g}..{hi:.3g}, complex "
            f"{min(g for g, _ in complex_):.3g}..{max(g for g, _ in complex_):.3g}); "
            f"{len(dominates)} real point(s) beaten in both losses by a complex one, "
            f"{len(dominated)} complex point(s) beaten by a real one")
    if not dominated and dominates:
        return _v(HOLDS, text)
    if len(dominated) == len(complex_):
        return _v(NOT_HOLD, text)
    return _v(INCONCLUSIVE, text)


def verdict_transfer(matrix: Mapping[str, Any], tolerance: float | None = None
                     ) -> tuple[Verdict, Verdict]:
    """(white-box is the strongest attack on each net, white-box robustness agrees across seeds)."""
    names, acc, n = matrix["sources"], matrix["accuracy"], int(matrix.get("n", 0))
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
        strongest = _v(NOT_HOLD, "a transfer attack beat white-box (possible masking): "
                       + "; ".join(worse))
    else:
        strongest = _v(HOLDS, f"white-box accuracy {wb}{off_txt} (tolerance {tol:.3f})")
    spread = max(diag) - min(diag)
    consistent = _v(HOLDS if spread <= tol else NOT_HOLD,
                    f"white-box accuracy across seeds {wb}: spread {spread:.3f} "
                    f"(margin {tol:.3f})")
    return strongest, consistent


def _compare(ours: float, limit: float) -> str:
    """HOLDS when ours is below limit by the timing margin, NOT_HOLD above it, else a tie."""
    if ours < limit * (1 - TIME_MARGIN):
        return HOLDS
    if ours > limit * (1 + TIME_MARGIN):
        return NOT_HOLD
    return INCONCLUSIVE


TIME_KEYS = ("real-pgd4", "real-pgd8", "complex-none", "complex-gr")
"""The training-time ratios (to real, no defense) the cost claim needs."""


def verdict_time(ratios: Mapping[str, float | None],
                 paper: Mapping[str, float] = PAPER_TIME_RATIOS,
                 hardware: str | None = None) -> Verdict:
    """The paper's cost claim, on our own clock: complex GR trains faster than 4- and 8-step
    PGD AT, and the complex net's own overhead (complex / real, no defense) is modest.

    Only our ratios among themselves decide; the paper's GPU ratios are shown beside them,
    never compared with ours, so a CPU run that is slower than a GPU table fails nothing.
    """
    missing = [k for k in TIME_KEYS if ratios.get(k) is None]
    if missing:
        return _v(NOT_MEASURED, f"no timing for {', '.join(missing)}")
    pgd4, pgd8, cnone, cgr = (float(ratios[k] or 0.0) for k in TIME_KEYS)
    parts = [("complex GR < PGD-8 AT", _compare(cgr, pgd8), f"{cgr:.2f} vs {pgd8:.2f}",
              f"{paper['complex-gr']:.2f} vs {paper['real-pgd8']:.2f}"),
             ("complex GR < PGD-4 AT", _compare(cgr, pgd4), f"{cgr:.2f} vs {pgd4:.2f}",
              f"{paper['complex-gr']:.2f} vs {paper['real-pgd4']:.2f}"),
             (f"complex overhead <= {MODEST_OVERHEAD:g}x", _compare(cnone, MODEST_OVERHEAD),
              f"{cnone:.2f}", f"{paper['complex-none']:.2f}")]
    text = "; ".join(f"{name}: {status} (ours {o}; paper {p})" for name, status, o, p in parts)
    text = ("ratios to real no defense on " + (hardware or "our machine")
            + f", paper on an RTX 2070 Super (MNIST); ties within {TIME_MARGIN:.0%}: " + text)
    statuses = {status for _, status, _, _ in parts}
    if statuses == {HOLDS}:
        return _v(HOLDS, text)
    if NOT_HOLD in statuses:
        return _v(NOT_HOLD, text)
    return _v(INCONCLUSIVE, text)


def verdict_identity(max_dev: float | None, tol: float = 1e-6) -> Verdict:
    if max_dev is None:
        return _v(NOT_MEASURED, "no complex layer found")
    text = f"max |(dg/dW_R)^2 + (dg/dW_I)^2 - 1| = {max_dev:.2e} on the trained layers (float64)"
    return _v(HOLDS if max_dev <= tol else NOT_HOLD, text)


def verdict_sizes(real: Mapping[str, int], complex_: Mapping[str, int],
                  slack: float = 1.1) -> Verdict:
    """The complex net gets no more storage or compute than the real one (within `slack`),
    so a robustness gain cannot be bought with size."""
    rp, rm = complex_["params"] / real["params"], complex_["macs"] / real["macs"]
    text = (f"complex/real parameters {rp:.2f} ({complex_['params']:,} vs {real['params']:,}), "
            f"MACs {rm:.2f} ({complex_['macs']:,} vs {real['macs']:,}); "
            f"criterion: both at most {slack:g}x")
    return _v(HOLDS if rp <= slack and rm <= slack else NOT_HOLD, text)


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
        return _v(NOT_MEASURED, "checks did not run")
    parts, bad = [], []
    if masking is not None:
        flags = list(masking.get("flagged", []))
        bad += flags
        parts.append("masking flags: " + (", ".join(flags) if flags else "none"))
    if aa is not None:
        if "skipped" in aa:
            parts.append(f"AutoAttack skipped ({aa['skipped']})")
        else:
            m = accuracy_margin(int(aa.get("n", n)))
            gap = aa["pgd_accuracy"] - aa["robust_accuracy"]
            parts.append(f"PGD(8) {aa['pgd_accuracy']:.3f} vs {aa_label(aa)} "
                         f"{aa['robust_accuracy']:.3f} (gap {gap:+.3f}, margin {m:.3f})")
            if gap > m:
                bad.append("autoattack_far_below_pgd")
    text = "; ".join(parts)
    return _v(NOT_HOLD, text + f" => flagged: {', '.join(bad)}") if bad else _v(HOLDS, text)


# -- from collected results --------------------------------------------------------------------

def curve_of(res: Mapping[str, Any], attack: str, label: str) -> dict[str, Any] | None:
    return res["evaluations"].get(f"eval-{attack}-{label}")


def time_seconds(res: Mapping[str, Any]) -> dict[str, float | None]:
    """Seconds per epoch of each compared model: from the timing job (every model timed in
    one process on one machine) where the plan has one and it finished, else the mean
    training seconds of each run."""
    timing = (res["evaluations"].get("eval-timing") or {}).get("models")
    if timing:
        return {label: (timing.get(label) or {}).get("seconds_per_epoch")
                for label in res["models"]}
    return {label: res["training"].get(tid, {}).get("seconds_per_epoch")
            for label, tid in res["models"].items()}


def time_hardware(res: Mapping[str, Any]) -> str:
    """Where the times of `time_seconds` were measured."""
    timing = res["evaluations"].get("eval-timing") or {}
    return str(timing.get("hardware") or res.get("hardware") or res.get("device")
               or "this machine")


def time_ratios(res: Mapping[str, Any]) -> dict[str, float | None]:
    spe = time_seconds(res)
    base = spe.get("real-none")
    return {label: (v / base if v is not None and base else None) for label, v in spe.items()}


def sweep_points(res: Mapping[str, Any], kind: str) -> list[tuple[float, float, float]]:
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


def _approaches(res: Results) -> Verdict:
    n = int(res["n_eval"])
    c, r, a = (curve_of(res, Attack.PGD, k) for k in ("complex-gr", "real-gr", "real-pgd4"))
    eps_c = res["claim_eps"]
    cg, rg, at = (curve_at(x, eps_c) if x else None for x in (c, r, a))
    if cg is None or rg is None or at is None or a is None:
        return _v(NOT_MEASURED, "a robustness curve is missing")
    at_clean = a["accuracy"][0] if a["eps"][0] == 0 else None
    return verdict_approaches(cg, rg, at, n, f"PGD(8) accuracy at eps {eps_c:g}",
                              at_clean=at_clean)


def _beats(attack: Attack, name: str) -> Callable[[Results], Verdict]:
    def judge(res: Results) -> Verdict:
        c, r = curve_of(res, attack, "complex-gr"), curve_of(res, attack, "real-gr")
        if not (c and r):
            return _v(NOT_MEASURED, "a robustness curve is missing")
        return verdict_beats(curve_mean(c), curve_mean(r), int(res["n_eval"]),
                             f"mean {name} accuracy over eps>0, complex GR vs real GR")
    return judge


def _identity(res: Results) -> Verdict:
    ident = res["evaluations"].get("eval-identity")
    if not ident:
        return _v(NOT_MEASURED, "the identity check did not run")
    return verdict_identity(ident.get("max_abs_deviation"))


def _sizes(res: Results) -> Verdict:
    sizes = res["evaluations"].get("eval-sizes")
    if not sizes:
        return _v(NOT_MEASURED, "sizes not computed")
    return verdict_sizes(sizes["models"]["real"], sizes["models"]["complex"])


def _frontier(res: Results) -> Verdict:
    pr = [(g, ce) for _, g, ce in sweep_points(res, "real")]
    pc = [(g, ce) for _, g, ce in sweep_points(res, "complex")]
    return verdict_frontier(pr, pc)


def _transfer(which: int) -> Callable[[Results], Verdict]:
    def judge(res: Results) -> Verdict:
        tm = res["evaluations"].get("eval-transfer")
        if not tm:
            return _v(NOT_MEASURED, "the transfer matrix did not run")
        return verdict_transfer(tm)[which]
    return judge


def _time(res: Results) -> Verdict:
    return verdict_time(time_ratios(res), hardware=time_hardware(res))


def _masking(kind: str) -> Callable[[Results], Verdict]:
    def judge(res: Results) -> Verdict:
        ev = res["evaluations"]
        return verdict_masking(ev.get(f"eval-masking-{kind}-gr"),
                               ev.get(f"eval-autoattack-{kind}-gr"), int(res["n_eval"]))
    return judge


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


CLAIMS: tuple[Claim, ...] = (
    Claim("identity", "unit-modulus identity", "identity", _identity),
    Claim("sizes", "matched size", "sizes", _sizes),
    Claim("pgd_complex_beats_real", "complex GR beats real GR, PGD", "robustness",
          _beats(Attack.PGD, "PGD(8)"), "PGD(8)"),
    Claim("fgsm_complex_beats_real", "complex GR beats real GR, FGSM", "robustness",
          _beats(Attack.FGSM, "FGSM"), "FGSM"),
    Claim("approaches_at", "complex GR approaches AT", "robustness", _approaches,
          "approaches AT"),
    Claim("frontier", "complex frontier below (Fig. 1)", "frontier", _frontier),
    Claim("transfer_whitebox_strongest", "white-box strongest (Fig. 2-3)", "transfer",
          _transfer(0), "white-box strongest"),
    Claim("transfer_consistent", "consistent across seeds (Fig. 2-3)", "transfer",
          _transfer(1), "consistent across seeds"),
    Claim("time", "complex GR cheaper than AT, modest overhead", "time", _time),
    Claim("masking_complex_gr", "no gradient masking, complex GR", "masking",
          _masking("complex"), "complex GR"),
    Claim("masking_real_gr", "no gradient masking, real GR", "masking", _masking("real"),
          "real GR"),
)


def verdicts(res: Results) -> dict[str, Verdict]:
    """Every claim's verdict, computed from the collected numbers alone."""
    return {c.key: c.judge(res) for c in CLAIMS}
