"""The cost claim: complex GR trains faster than 4- and 8-step PGD AT, and the complex net's
own overhead is modest, judged on our own clock (the paper's GPU ratios shown beside ours);
with the readers of the collected training times."""

from __future__ import annotations

from collections.abc import Mapping

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
from cvgr.paper import PAPER_TIME_RATIOS

__all__ = ["CLAIMS", "MODEST_OVERHEAD", "TIME_KEYS", "TIME_MARGIN", "time_hardware",
           "time_ratios", "time_seconds", "verdict_time"]

MODEST_OVERHEAD = 2.0
"""A complex net's own training-time overhead counts as modest up to this ratio to the real
net (the paper's RTX 2070 Super table: 1.42, which its authors put down to an unoptimised
implementation)."""
TIME_MARGIN = 0.1
"""Relative timing noise (shared cores, other jobs): ratios closer than 10% are a tie."""
TIME_KEYS = ("real-pgd4", "real-pgd8", "complex-none", "complex-gr")
"""The training-time ratios (to real, no defense) the cost claim needs."""


def _compare(ours: float, limit: float) -> str:
    """HOLDS when ours is below limit by the timing margin, NOT_HOLD above it, else a tie."""
    if ours < limit * (1 - TIME_MARGIN):
        return HOLDS
    if ours > limit * (1 + TIME_MARGIN):
        return NOT_HOLD
    return INCONCLUSIVE


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
        return make_verdict(NOT_MEASURED, f"no timing for {', '.join(missing)}")
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
        return make_verdict(HOLDS, text)
    if NOT_HOLD in statuses:
        return make_verdict(NOT_HOLD, text)
    return make_verdict(INCONCLUSIVE, text)


def time_seconds(res: Results) -> dict[str, float | None]:
    """Seconds per epoch of each compared model: from the timing job (every model timed in
    one process on one machine) where the plan has one and it finished, else the mean
    training seconds of each run."""
    timing = (res["evaluations"].get("eval-timing") or {}).get("models")
    if timing:
        return {label: (timing.get(label) or {}).get("seconds_per_epoch")
                for label in res["models"]}
    return {label: res["training"].get(tid, {}).get("seconds_per_epoch")
            for label, tid in res["models"].items()}


def _run_machines(res: Results) -> set[str]:
    """Where the training runs behind `time_seconds` ran, without a timing job: each run's
    recorded hardware (a zoo model's is the zoo's), else the reproduction's."""
    here = str(res.get("hardware") or res.get("device") or "this machine")
    runs = [res["training"].get(tid) or {} for tid in res["models"].values()]
    return {str(t.get("hardware") or here) for t in runs
            if t.get("seconds_per_epoch") is not None}


def time_hardware(res: Results) -> str:
    """Where the times of `time_seconds` were measured."""
    timing = res["evaluations"].get("eval-timing") or {}
    if timing.get("models"):
        return str(timing.get("hardware") or res.get("hardware") or res.get("device")
                   or "this machine")
    machines = sorted(_run_machines(res))
    if len(machines) > 1:
        return "different machines (" + "; ".join(machines) + ")"
    return machines[0] if machines else str(res.get("hardware") or "this machine")


def time_ratios(res: Results) -> dict[str, float | None]:
    """Seconds per epoch of each model as a ratio to the real net without defense."""
    spe = time_seconds(res)
    base = spe.get("real-none")
    return {label: (v / base if v is not None and base else None) for label, v in spe.items()}


def _time(res: Results) -> Verdict:
    if not (res["evaluations"].get("eval-timing") or {}).get("models") \
            and len(_run_machines(res)) > 1:
        return make_verdict(NOT_MEASURED, f"the runs' seconds come from {time_hardware(res)}: "
                            "ratios across machines mean nothing; the timing job (eval-timing) "
                            "times the six nets on one machine")
    return verdict_time(time_ratios(res), hardware=time_hardware(res))


CLAIMS: tuple[Claim, ...] = (
    Claim("time", "complex GR cheaper than AT, modest overhead", "time", _time),
)
