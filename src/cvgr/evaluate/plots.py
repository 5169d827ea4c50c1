"""PNG figures: robustness curves and transfer heatmaps, drawn with the Agg canvas.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend
switch), so plotting works headless and never disturbs a caller's matplotlib state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cvgr.io import atomic_write

__all__ = ["plot_curves", "plot_matrix"]


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120,
                                                      bbox_inches="tight"))


def plot_curves(curves: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
                path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy against eps, one line per curve; `curves` maps a label to a curve dict."""
    items = list(curves.items()) if isinstance(curves, Mapping) else [
        (f"{c.get('attack', 'attack')} {i}", c) for i, c in enumerate(curves)]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for label, c in items:
        ax.plot(c["eps"], c["accuracy"], marker="o", markersize=3, label=label)
    norm = next((c.get("options", {}).get("norm") for _, c in items), "linf") or "linf"
    ax.set_xlabel(f"eps ({'L-inf' if norm == 'linf' else 'L2'})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if items:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_matrix(matrix: Mapping[str, Any], path: str | os.PathLike,
                title: str | None = None) -> Path:
    """Heatmap of a transfer matrix (rows: source, columns: target), accuracies written in."""
    acc, src, tgt = matrix["accuracy"], matrix["sources"], matrix["targets"]
    fig = Figure(figsize=(1.2 * len(tgt) + 2.5, 1.0 * len(src) + 1.8))
    ax = fig.add_subplot()
    im = ax.imshow(acc, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(tgt)), tgt, rotation=30, ha="right")
    ax.set_yticks(range(len(src)), src)
    ax.set_xlabel("target (evaluated)")
    ax.set_ylabel("source (crafted on)")
    for i, row in enumerate(acc):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                    color="black" if v > 0.6 else "white", fontsize=9)
    fig.colorbar(im, ax=ax, label="accuracy")
    ax.set_title(title or f"{matrix.get('attack', 'pgd')}-{matrix.get('steps', '')} transfer, "
                          f"eps={matrix.get('eps', 0):g}")
    return _save(fig, path)
