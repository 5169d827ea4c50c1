"""Robustness against training cost for the Fashion-MNIST zoo: the picture and the paragraph
that answer how complex GR stands against the field's standard defenses (PGD-10 adversarial
training, TRADES) and whether adversarial training gains from complex nets.

The cost of a defense is its training time as a ratio to real no defense, measured for every
defense in one run on one machine by ``benchmarks/train_speed.py`` (its rows as data in
``docs/figures/train_speed.json``); each zoo entry names its row in `COST_ROWS`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from cvgr.io import atomic_write, read_json

__all__ = ["COST_ROWS", "PAIRS", "SPEED_JSON", "defense_answer", "load_costs",
           "plot_robustness_cost"]

SPEED_JSON = Path("docs") / "figures" / "train_speed.json"
COST_ROWS = {
    "real-none": "real none", "real-gr": "real GR exact", "real-pgd4": "real AT pgd4",
    "real-pgd10": "real AT pgd10", "real-trades": "real TRADES",
    "complex-none": "complex none", "complex-gr": "complex GR exact",
    "complex-gr-seed1": "complex GR exact", "complex-gr-seed2": "complex GR exact",
    "complex-gr-reference": "complex GR reference", "complex-gr-fd": "complex GR fd",
    "complex-pgd4": "complex AT pgd4", "complex-trades": "complex TRADES",
    "complex-gr-pgd4": "complex GR+AT pgd4",
}
"""Zoo entry (short name) -> the train_speed.py row that times its defense."""

DATASET = "fashion-mnist"


def load_costs(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The speed benchmark's rows ({} when it has not been written)."""
    p = Path(path) if path is not None else SPEED_JSON
    return read_json(p) if p.is_file() else {}


def _cost(short: str, costs: dict[str, Any]) -> float | None:
    row = costs.get("rows", {}).get(COST_ROWS.get(short, ""))
    return None if row is None else float(row["ratio_epoch"])


def _points(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rs if r["dataset"] == DATASET and r.get("autoattack") is not None
            and r.get("version") == "standard" and r.get("clean_accuracy") is not None]


def plot_robustness_cost(rs: list[dict[str, Any]], costs: dict[str, Any],
                         path: str | os.PathLike) -> Path | None:
    """Clean accuracy (x) against standard AutoAttack accuracy (y), one labelled point per
    evaluated Fashion-MNIST entry; a second panel: AutoAttack accuracy against training
    cost. None when no entry is evaluated."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = [r for r in _points(rs) if "-seed" not in r["name"]]  # seeds: docs/zoo.md's spread
    if not pts:
        return None
    fig = Figure(figsize=(11.0, 4.4))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for r in pts:
        short = r["name"].split("/", 1)[1]
        color = "#d62728" if "complex" in short else "#1f77b4"
        left.scatter(r["clean_accuracy"], r["autoattack"], color=color, s=22)
        left.annotate(short, (r["clean_accuracy"], r["autoattack"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
        c = _cost(short, costs)
        if c is not None:
            right.scatter(c, r["autoattack"], color=color, s=22)
            right.annotate(short, (c, r["autoattack"]), fontsize=7, xytext=(3, 3),
                           textcoords="offset points")
    n = sorted({r["n_images"] for r in pts})
    left.set(xlabel="clean accuracy", ylabel="standard AutoAttack accuracy (eps 0.1)",
             title=f"Fashion-MNIST zoo: robustness and accuracy (first {n[0]} test images)")
    right.set(xlabel="training time / real no defense", ylabel="standard AutoAttack accuracy",
              title="robustness and training cost (" + (costs.get("hardware") or
                                                       "cost not measured yet") + ")")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(8)
    left.scatter([], [], color="#d62728", label="complex net")
    left.scatter([], [], color="#1f77b4", label="real net")
    left.legend(fontsize=7, loc="lower left")
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                                            bbox_inches="tight"))


def _se2(a: dict[str, Any], b: dict[str, Any]) -> float:
    def se(p: float, k: int) -> float:
        return math.sqrt(max(p * (1 - p), 0.25 / k) / k)

    return 2 * math.sqrt(se(a["autoattack"], a["n_images"]) ** 2
                         + se(b["autoattack"], b["n_images"]) ** 2)


def _versus(d: dict[str, dict[str, Any]], a: str, b: str, costs: dict[str, Any]) -> str:
    what = f"{_LABEL[a]} against {_LABEL[b]}"
    missing = [x for x in (a, b) if x not in d]
    if missing:
        return f"{what}: not measured yet ({', '.join(missing)} pending)."
    ra, rb = d[a], d[b]
    diff, noise = ra["autoattack"] - rb["autoattack"], _se2(ra, rb)
    verdict = "ties with" if abs(diff) <= noise else ("beats" if diff > 0 else "loses to")
    ca, cb = _cost(a, costs), _cost(b, costs)
    cost = (f", at {ca / cb:.2f} of its training cost" if ca and cb else
            ", training cost not measured yet")
    return (f"{what}: {verdict} (AutoAttack {ra['autoattack']:.3f} against "
            f"{rb['autoattack']:.3f}, {diff:+.3f}, two standard errors {noise:.3f}; clean "
            f"{ra['clean_accuracy']:.3f} against {rb['clean_accuracy']:.3f}{cost}).")


_LABEL = {"complex-gr": "complex GR", "real-pgd10": "real PGD-10 AT",
          "real-trades": "real TRADES", "complex-pgd4": "complex PGD-4 AT",
          "real-pgd4": "real PGD-4 AT", "complex-trades": "complex TRADES",
          "complex-gr-pgd4": "complex GR + PGD-4 AT"}
PAIRS = [("complex-gr", "real-pgd10"), ("complex-gr", "real-trades"),
         ("complex-gr", "real-pgd4"), ("complex-pgd4", "real-pgd4"),
         ("complex-trades", "real-trades"), ("complex-gr-pgd4", "complex-pgd4"),
         ("complex-gr-pgd4", "complex-gr")]
"""The questions: does complex GR reach PGD-10 AT and TRADES (and the paper's PGD-4
baseline); does AT gain from complex nets as GR does; does GR add to AT."""


def defense_answer(rs: list[dict[str, Any]], costs: dict[str, Any]) -> list[str]:
    """One sentence per pair of `PAIRS`, from the measured rows alone; pending ones say so."""
    d = {r["name"].split("/", 1)[1]: r for r in _points(rs)}
    return [_versus(d, a, b, costs) for a, b in PAIRS]
