"""The report's figures (PNG, drawn off-screen with matplotlib's Agg canvas)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvgr.experiments.report.verdicts import curve_of, sweep_points, time_hardware, time_ratios
from cvgr.io import atomic_write
from cvgr.names import Attack
from cvgr.paper import PAPER_TIME_RATIOS

__all__ = ["LABELS", "plot_robustness", "plot_sweep", "plot_times"]

LABELS = {"real-none": "real, no defense", "real-noise": "real, noise",
          "real-gr": "real, GR", "real-pgd4": "real, PGD-4 AT", "real-pgd8": "real, PGD-8 AT",
          "complex-none": "complex, no defense", "complex-noise": "complex, noise",
          "complex-gr": "complex, GR"}
"""How each compared model is called in tables and figures."""

_COLORS = {"none": "#444444", "noise": "#1f77b4", "gr": "#d62728", "pgd4": "#2ca02c",
           "pgd8": "#9467bd"}


def _figure(size: tuple[float, float] = (6.0, 4.2)) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                                      bbox_inches="tight"))


def plot_robustness(res: Mapping[str, Any], attack: str, path: Path) -> Path | None:
    """One line per model: complex solid, real dashed, one colour per defense."""
    curves = [(lab, c) for lab in res["models"] if (c := curve_of(res, attack, lab))]
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for lab, c in curves:
        kind, defense = lab.split("-", 1)
        ax.plot(c["eps"], c["accuracy"], marker="o" if kind == "complex" else "s",
                markersize=3.5, linestyle="-" if kind == "complex" else "--",
                color=_COLORS.get(defense, None), label=LABELS.get(lab, lab))
    name = "FGSM" if attack == Attack.FGSM else "PGD(8)"
    ax.axvline(res["claim_eps"], color="#bbbbbb", linewidth=0.8)
    ax.set(xlabel="eps (L-inf)", ylabel="accuracy", ylim=(-0.02, 1.02),
           title=f"{res['dataset']}: white-box {name}, {res['n_images']} test images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_sweep(res: Mapping[str, Any], path: Path) -> Path | None:
    fig = _figure((5.5, 4.2))
    ax = fig.add_subplot()
    drawn = False
    for kind, style in (("real", "--s"), ("complex", "-o")):
        pts = sweep_points(res, kind)
        if not pts:
            continue
        drawn = True
        ax.plot([g for _, g, _ in pts], [c for _, _, c in pts], style, label=kind,
                color="#d62728" if kind == "complex" else "#444444")
        for b, g, c in pts:
            ax.annotate(f"β={b:g}", (g, c), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    if not drawn:
        return None
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    # labels at 1, 2 and 5 of each decade: a sweep often spans less than one decade
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="final GR loss (penalty / beta)", ylabel="final classification (CE) loss",
           title=f"{res['dataset']}: beta sweep (seed Figure 1)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def plot_transfer_curves(res: Mapping[str, Any], path: Path) -> Path | None:
    """Seed Figures 2-3: per target net, white-box PGD accuracy (solid) and accuracy under
    PGD transferred from each other net (dashed), against eps."""
    tc = res["evaluations"].get("eval-transfer-curves")
    if not tc:
        return None
    names, eps = tc["targets"], tc["eps"]
    fig = _figure((3.4 * len(names), 3.2))
    for j, target in enumerate(names):
        ax = fig.add_subplot(1, len(names), j + 1)
        for i, src in enumerate(tc["sources"]):
            acc = [m[i][j] for m in tc["accuracy"]]
            white = src == target
            ax.plot(eps, acc, linestyle="-" if white else "--", marker="o" if white else None,
                    markersize=3, linewidth=2 if white else 1.2,
                    label="white-box" if white else f"from {src}")
        ax.set(xlabel="eps (L-inf)", ylim=(-0.02, 1.02), title=f"net {target}")
        if j == 0:
            ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{res['dataset']}: PGD({tc['steps']}) white-box and transferred among "
                 f"independently trained complex GR nets, {tc['n_images']} test images", fontsize=9)
    return _save(fig, path)


def white_box_margin(tc: Mapping[str, Any]) -> float:
    """Largest amount by which a transferred attack beat white-box on any net at any eps > 0
    (<= 0: white-box was the strongest everywhere; -1 when there is no eps > 0)."""
    worst = -1.0
    for eps, m in zip(tc["eps"], tc["accuracy"], strict=True):
        if eps == 0:
            continue  # no attack at eps 0: every row is the clean accuracy
        for j in range(len(tc["targets"])):
            off = [m[i][j] for i in range(len(tc["sources"])) if i != j]
            if off:
                worst = max(worst, m[j][j] - min(off))
    return worst


def plot_times(res: Mapping[str, Any], path: Path) -> Path | None:
    """Our ratios beside the paper's, each labelled with its hardware."""
    ratios, hardware = time_ratios(res), time_hardware(res)
    keys = [k for k in PAPER_TIME_RATIOS if ratios.get(k) is not None]
    if not keys:
        return None
    fig = _figure((6.0, 3.6))
    ax = fig.add_subplot()
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], [PAPER_TIME_RATIOS[k] for k in keys], 0.4,
           label="paper (RTX 2070 Super, MNIST)", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [ratios[k] or 0.0 for k in keys], 0.4, label="ours",
           color="#d62728")
    ax.set_xticks(list(xs), [LABELS.get(k, k) for k in keys], rotation=20, ha="right",
                  fontsize=8)
    ax.set_ylabel("training time / real no defense")
    ax.set_title(f"training-time ratios: ours ({hardware}) vs paper (RTX 2070 Super)",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
