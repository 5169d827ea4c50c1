"""The report: each of the paper's claims, the figure or table that tests it, and a verdict.

`collect` gathers the raw numbers of a reproduction directory into one JSON-ready dict;
`verdicts` judges each claim from those numbers alone (pure functions, testable on
synthetic results); `write_report` draws the figures and writes report.md, report.html
(self-contained: figures embedded) and results.json.

Verdicts are "holds", "does not hold" or "inconclusive" (or "not measured" when a job
failed), always with the numbers. Differences of accuracy count only beyond a margin of
max(0.02, 1/sqrt(n)) for n test images, about two binomial standard errors at 50%.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvgr.experiments.plan import PAPER_TIME_RATIOS, model_label
from cvgr.io import atomic_write, read_json, read_jsonl, write_json

__all__ = ["HOLDS", "INCONCLUSIVE", "NOT_HOLD", "NOT_MEASURED", "accuracy_margin", "collect",
           "curve_mean", "verdict_approaches", "verdict_beats", "verdict_frontier",
           "verdict_identity", "verdict_masking", "verdict_sizes", "verdict_time",
           "verdict_transfer", "verdicts", "write_report"]

HOLDS, NOT_HOLD, INCONCLUSIVE, NOT_MEASURED = ("holds", "does not hold", "inconclusive",
                                               "not measured")
Verdict = dict[str, str]

LABELS = {"real-none": "real, no defense", "real-noise": "real, noise",
          "real-gr": "real, GR", "real-pgd4": "real, PGD-4 AT", "real-pgd8": "real, PGD-8 AT",
          "complex-none": "complex, no defense", "complex-noise": "complex, noise",
          "complex-gr": "complex, GR"}


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


def verdict_time(ratios: Mapping[str, float | None],
                 paper: Mapping[str, float] = PAPER_TIME_RATIOS) -> Verdict:
    """Ours must beat (be at or below) each of the paper's time ratios."""
    missing = [k for k in paper if ratios.get(k) is None]
    if missing:
        return _v(NOT_MEASURED, f"no timing for {', '.join(missing)}")
    parts = [f"{k} {ratios[k]:.2f} vs {paper[k]:.2f}" for k in paper]
    slower = [k for k in paper if ratios[k] > paper[k]]  # type: ignore[operator]
    text = "ratio to real no defense, ours vs paper: " + ", ".join(parts)
    if not slower:
        return _v(HOLDS, text)
    return _v(NOT_HOLD, text + f"; slower than the paper: {', '.join(slower)}")


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


# -- collecting ----------------------------------------------------------------------------------

def _seconds_per_epoch(rows: list[dict[str, Any]]) -> float | None:
    vals = [r.get("train_seconds", r.get("seconds")) for r in rows]
    vals = [v for v in vals if isinstance(v, int | float)]
    return sum(vals) / len(vals) if vals else None


def collect(root: str | os.PathLike, plan: Mapping[str, Any],
            outcome: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything measured under ROOT for `plan`, as one JSON-ready dict."""
    root = Path(root)
    training: dict[str, Any] = {}
    evaluations: dict[str, Any] = {}
    for job in plan["jobs"]:
        if job["kind"] == "train":
            mfile = root / "runs" / job["id"] / "metrics.jsonl"
            rows = read_jsonl(mfile) if mfile.is_file() else []
            c = job["config"]
            training[job["id"]] = {
                "kind": "complex" if c["complex"] else "real", "arch": c["arch"],
                "beta": c.get("beta", 0.0), "noise": c.get("noise", 0.0),
                "adv_steps": c.get("adv_steps") if c.get("adv_eps") else None,
                "seed": c.get("seed", 0), "epochs_done": len(rows),
                "final": rows[-1] if rows else None,
                "seconds_per_epoch": _seconds_per_epoch(rows),
            }
        else:
            f = root / "evals" / f"{job['id']}.json"
            if f.is_file():
                stored = read_json(f)
                if stored.get("config") == job["config"]:
                    evaluations[job["id"]] = stored["result"]
    log = root / "log.jsonl"
    train_ids = {j["id"] for j in plan["jobs"] if j["kind"] == "train"}
    done = [r for r in (read_jsonl(log) if log.is_file() else [])
            if r.get("status") == "done" and r.get("id") in train_ids]
    workers = max((int(r.get("workers", 1)) for r in done), default=1)
    devices = sorted({str(r["device"]) for r in done if r.get("device")})
    keys = ("dataset", "budget", "settings", "archs", "eps", "claim_eps", "n_eval", "n_train",
            "epochs", "models", "sweep", "seeded")
    res = {k: plan[k] for k in keys}
    res.update(training=training, evaluations=evaluations,
               failed=dict((outcome or {}).get("failed", {})),
               blocked=list((outcome or {}).get("blocked", [])),
               workers=workers, device=", ".join(devices) or None)
    return res


# -- judging -------------------------------------------------------------------------------------

def _curve(res: Mapping[str, Any], attack: str, label: str) -> dict[str, Any] | None:
    return res["evaluations"].get(f"eval-{attack}-{label}")


def time_ratios(res: Mapping[str, Any]) -> dict[str, float | None]:
    spe = {label: res["training"].get(tid, {}).get("seconds_per_epoch")
           for label, tid in res["models"].items()}
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


def verdicts(res: Mapping[str, Any]) -> dict[str, Verdict]:
    """Every claim's verdict, computed from the collected numbers alone."""
    n = int(res["n_eval"])
    out: dict[str, Verdict] = {}
    ev = res["evaluations"]

    ident = ev.get("eval-identity")
    out["identity"] = (verdict_identity(ident.get("max_abs_deviation")) if ident
                       else _v(NOT_MEASURED, "the identity check did not run"))
    sizes = ev.get("eval-sizes")
    out["sizes"] = (verdict_sizes(sizes["models"]["real"], sizes["models"]["complex"]) if sizes
                    else _v(NOT_MEASURED, "sizes not computed"))

    for attack, name in (("pgd", "PGD(8)"), ("fgsm", "FGSM")):
        c, r = _curve(res, attack, "complex-gr"), _curve(res, attack, "real-gr")
        out[f"{attack}_complex_beats_real"] = (
            verdict_beats(curve_mean(c), curve_mean(r), n,
                          f"mean {name} accuracy over eps>0, complex GR vs real GR")
            if c and r else _v(NOT_MEASURED, "a robustness curve is missing"))
    c, r, a = (_curve(res, "pgd", k) for k in ("complex-gr", "real-gr", "real-pgd4"))
    eps_c = res["claim_eps"]
    at = [curve_at(x, eps_c) if x else None for x in (c, r, a)]
    at_clean = a["accuracy"][0] if a and a["eps"][0] == 0 else None
    out["approaches_at"] = (
        verdict_approaches(*at, n, f"PGD(8) accuracy at eps {eps_c:g}",  # type: ignore[arg-type]
                           at_clean=at_clean)
        if None not in at else _v(NOT_MEASURED, "a robustness curve is missing"))

    pr = [(g, ce) for _, g, ce in sweep_points(res, "real")]
    pc = [(g, ce) for _, g, ce in sweep_points(res, "complex")]
    out["frontier"] = verdict_frontier(pr, pc)

    tm = ev.get("eval-transfer")
    if tm:
        out["transfer_whitebox_strongest"], out["transfer_consistent"] = verdict_transfer(tm)
    else:
        out["transfer_whitebox_strongest"] = out["transfer_consistent"] = _v(
            NOT_MEASURED, "the transfer matrix did not run")

    out["time"] = verdict_time(time_ratios(res))
    for kind in ("complex", "real"):
        out[f"masking_{kind}_gr"] = verdict_masking(ev.get(f"eval-masking-{kind}-gr"),
                                                    ev.get(f"eval-autoattack-{kind}-gr"), n)
    return out


# -- figures -------------------------------------------------------------------------------------

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
    curves = [(lab, _curve(res, attack, lab)) for lab in res["models"]]
    curves = [(lab, c) for lab, c in curves if c]
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for lab, c in curves:
        kind, defense = lab.split("-", 1)
        ax.plot(c["eps"], c["accuracy"], marker="o" if kind == "complex" else "s",
                markersize=3.5, linestyle="-" if kind == "complex" else "--",
                color=_COLORS.get(defense, None), label=LABELS.get(lab, lab))
    name = "FGSM" if attack == "fgsm" else "PGD(8)"
    ax.axvline(res["claim_eps"], color="#bbbbbb", linewidth=0.8)
    ax.set(xlabel="eps (L-inf)", ylabel="accuracy", ylim=(-0.02, 1.02),
           title=f"{res['dataset']}: white-box {name}, {res['n_eval']} test images")
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
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="final GR loss (penalty / beta)", ylabel="final classification (CE) loss",
           title=f"{res['dataset']}: beta sweep (seed Figure 1)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def plot_times(res: Mapping[str, Any], path: Path) -> Path | None:
    ratios = time_ratios(res)
    keys = [k for k in PAPER_TIME_RATIOS if ratios.get(k) is not None]
    if not keys:
        return None
    fig = _figure((6.0, 3.6))
    ax = fig.add_subplot()
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], [PAPER_TIME_RATIOS[k] for k in keys], 0.4, label="paper",
           color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [ratios[k] for k in keys], 0.4, label="ours",
           color="#d62728")
    ax.set_xticks(list(xs), [LABELS.get(k, k) for k in keys], rotation=20, ha="right",
                  fontsize=8)
    ax.set(ylabel="training time / real no defense", title="training-time ratios")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _save(fig, path)


# -- rendering -----------------------------------------------------------------------------------

def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


class _Doc:
    """Blocks rendered both as Markdown and as HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def claim(self, text: str) -> None:
        self.blocks.append(("claim", text))

    def verdict(self, v: Verdict, what: str = "") -> None:
        self.blocks.append(("verdict", (v, what)))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", (headers, [[_fmt(c) for c in r] for r in rows])))

    def img(self, path: Path | None, alt: str) -> None:
        if path is not None:
            self.blocks.append(("img", (path, alt)))

    def markdown(self, base: Path) -> str:
        out = []
        for kind, b in self.blocks:
            if kind == "h":
                out.append("#" * b[0] + " " + b[1])
            elif kind == "p":
                out.append(b)
            elif kind == "claim":
                out.append(f"> **Paper's claim.** {b}")
            elif kind == "verdict":
                v, what = b
                out.append(f"**Verdict{' (' + what + ')' if what else ''}: {v['status']}** "
                           f"— {v['text']}")
            elif kind == "table":
                headers, rows = b
                def line(cells: list[str]) -> str:
                    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

                out.append("\n".join([line(headers), "|" + "---|" * len(headers)]
                                     + [line(r) for r in rows]))
            elif kind == "img":
                out.append(f"![{b[1]}]({os.path.relpath(b[0], base)})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        body = []
        for kind, b in self.blocks:
            if kind == "h":
                body.append(f"<h{b[0]}>{e(b[1])}</h{b[0]}>")
            elif kind == "p":
                body.append(f"<p>{e(b)}</p>")
            elif kind == "claim":
                body.append(f"<blockquote><b>Paper's claim.</b> {e(b)}</blockquote>")
            elif kind == "verdict":
                v, what = b
                cls = {HOLDS: "ok", NOT_HOLD: "bad"}.get(v["status"], "meh")
                body.append(f"<p class='verdict {cls}'><b>Verdict"
                            f"{e(' (' + what + ')') if what else ''}: {e(v['status'])}</b>"
                            f" — {e(v['text'])}</p>")
            elif kind == "table":
                headers, rows = b
                body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers)
                            + "</tr>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r)
                                                + "</tr>" for r in rows) + "</table>")
            elif kind == "img":
                data = base64.b64encode(Path(b[0]).read_bytes()).decode()
                body.append(f"<p><img alt='{e(b[1])}' src='data:image/png;base64,{data}'></p>")
        css = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
               "text-align:right}blockquote{color:#555;border-left:3px solid #ccc;margin-left:0;"
               "padding-left:1em}.verdict.ok{color:#176117}.verdict.bad{color:#a11}"
               ".verdict.meh{color:#8a6d00}img{max-width:100%}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
                f"<style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _summary_rows(res: Mapping[str, Any]) -> list[list[Any]]:
    ratios = time_ratios(res)
    sizes = (res["evaluations"].get("eval-sizes") or {}).get("models", {})
    rows = []
    for lab, tid in res["models"].items():
        kind = lab.split("-", 1)[0]
        t = res["training"].get(tid, {})
        f, p = _curve(res, "fgsm", lab), _curve(res, "pgd", lab)
        clean = (p or f or {}).get("accuracy", [None])[0] if (p or f) else None
        rows.append([LABELS.get(lab, lab), sizes.get(kind, {}).get("params"),
                     sizes.get(kind, {}).get("macs"), clean,
                     curve_at(f, res["claim_eps"]) if f else None,
                     curve_at(p, res["claim_eps"]) if p else None,
                     curve_mean(p) if p else None, t.get("seconds_per_epoch"), ratios.get(lab),
                     PAPER_TIME_RATIOS.get(lab, 1.0 if lab == "real-none" else None)])
    return rows


SUMMARY_HEADERS = ["model", "params", "MACs/image", "clean acc", "FGSM acc @claim eps",
                   "PGD(8) acc @claim eps", "mean PGD(8) acc", "s/epoch", "time ratio",
                   "paper ratio"]


def summary_markdown(res: Mapping[str, Any]) -> str:
    """The main table alone (for the README)."""
    d = _Doc()
    d.table([h.replace("@claim eps", f"@{res['claim_eps']:g}") for h in SUMMARY_HEADERS],
            _summary_rows(res))
    return d.markdown(Path("."))


def write_report(res: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Figures under OUT/figures, OUT/report.md, OUT/report.html, OUT/summary.md and
    OUT/results.json (the collected numbers plus verdicts). Returns the verdicts."""
    out = Path(out_dir)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    vs = verdicts(res)
    res["verdicts"] = vs
    b, s = res["budget"], res["settings"]
    ds, eps_c, n = res["dataset"], res["claim_eps"], res["n_eval"]
    d = _Doc()
    d.h(1, f"Reproduction report: {ds}, budget '{b['name']}'")
    d.p(f"Paper: Yeats, Chen, Li, \"Improving Gradient Regularization using Complex-Valued "
        f"Neural Networks\" (ICML 2021). Real {res['archs']['real']} against complex "
        f"{res['archs']['complex']}; {res['epochs']} epoch(s) on {res['n_train']:,} training "
        f"images; attacks on the first {n:,} test images; claim eps {eps_c:g}. "
        f"Settings: {s['source']}. Budget: {b['description']}.")
    if res["failed"] or res["blocked"]:
        d.p("Incomplete: failed jobs " + "; ".join(f"{k} ({v})" for k, v in res["failed"].items())
            + (f"; not run: {', '.join(res['blocked'])}" if res["blocked"] else "")
            + ". Rerun the same command to retry them.")
    d.p("Verdicts: 'holds' / 'does not hold' beyond a margin of max(0.02, 1/sqrt(n)) "
        "accuracy; 'inconclusive' within it. Small budgets give noisy numbers: read the "
        "quick budget's verdicts as a smoke test, not as evidence.")
    d.h(2, "Summary")
    d.table([h.replace("@claim eps", f"@{eps_c:g}") for h in SUMMARY_HEADERS],
            _summary_rows(res))
    listing = [("identity", "unit-modulus identity"), ("sizes", "matched size"),
               ("pgd_complex_beats_real", "complex GR beats real GR, PGD"),
               ("fgsm_complex_beats_real", "complex GR beats real GR, FGSM"),
               ("approaches_at", "complex GR approaches AT"),
               ("frontier", "complex frontier below (Fig. 1)"),
               ("transfer_whitebox_strongest", "white-box strongest (Fig. 2-3)"),
               ("transfer_consistent", "consistent across seeds (Fig. 2-3)"),
               ("time", "training-time ratios"),
               ("masking_complex_gr", "no gradient masking, complex GR"),
               ("masking_real_gr", "no gradient masking, real GR")]
    d.table(["claim", "verdict"], [[name, vs[k]["status"]] for k, name in listing])

    # 1. identity
    d.h(2, "1. The unit-modulus identity")
    d.claim("For every weight of a phase-to-magnitude layer, (dg/dW_R)^2 + (dg/dW_I)^2 = 1, "
            "because the input has unit modulus.")
    ident = res["evaluations"].get("eval-identity")
    if ident:
        d.table(["layer", "type", "units", "weights per unit", "input samples",
                 "max |sum - 1|"],
                [[r["layer"], r["type"], r["units"], r["weights_per_unit"], r["samples"],
                  f"{r['max_abs_deviation']:.1e}"] for r in ident["layers"]])
    d.verdict(vs["identity"])

    # 2. sizes
    d.h(2, "2. Parameters and MACs of the compared models")
    d.claim("The real and complex networks compared have comparable storage and compute "
            "(tested as: the complex net uses no more parameters or MACs than the real one).")
    sizes = res["evaluations"].get("eval-sizes")
    if sizes:
        d.table(["kind", "architecture", "reference name", "parameters", "MACs/image"],
                [[k, v["arch"], v["reference"], v["params"], v["macs"]]
                 for k, v in sizes["models"].items()])
        d.p("A complex multiply-accumulate counts as 4 real ones; parameters count real "
            "numbers (a complex weight is 2).")
    d.verdict(vs["sizes"])

    # 3. robustness
    d.h(2, "3. White-box robustness: FGSM and PGD(8)")
    d.claim("At matched size, a GR-trained complex net beats a GR-trained real net under "
            "white-box attack and approaches a real net trained with 4- or 8-step PGD AT.")
    p_pgd = plot_robustness(res, "pgd", figs / "robustness_pgd.png")
    p_fgsm = plot_robustness(res, "fgsm", figs / "robustness_fgsm.png")
    d.img(p_pgd, "PGD(8) robustness curves")
    d.img(p_fgsm, "FGSM robustness curves")
    for attack, name in (("pgd", "PGD(8)"), ("fgsm", "FGSM")):
        curves = [(lab, _curve(res, attack, lab)) for lab in res["models"]]
        curves = [(lab, c) for lab, c in curves if c]
        if curves:
            d.p(f"{name} accuracy by eps:")
            d.table(["model", *[f"{e:g}" for e in curves[0][1]["eps"]]],
                    [[LABELS.get(lab, lab), *c["accuracy"]] for lab, c in curves])
    d.verdict(vs["pgd_complex_beats_real"], "PGD(8)")
    d.verdict(vs["fgsm_complex_beats_real"], "FGSM")
    d.verdict(vs["approaches_at"], "approaches AT")

    # 4. frontier
    d.h(2, "4. Classification loss against GR loss (seed Figure 1)")
    d.claim("Across a sweep of beta, the complex net keeps a lower classification loss at the "
            "same GR loss: its frontier lies below the real net's.")
    d.img(plot_sweep(res, figs / "beta_sweep.png"), "beta sweep")
    rows = [[kind, f"{beta:g}", g, ce] for kind in ("real", "complex")
            for beta, g, ce in sweep_points(res, kind)]
    if rows:
        d.table(["net", "beta", "final GR loss", "final CE loss"], rows)
        d.p("Final-epoch training averages; GR loss = penalty / beta"
            + (f", trained with noise sigma {s['gr_noise']:g}" if s["gr_noise"] else "") + ".")
    d.verdict(vs["frontier"])

    # 5. transfer
    d.h(2, "5. Independently trained GR nets (seed Figures 2-3)")
    d.claim("PGD(8) among independently seeded GR networks (A, B, C): each is robust to its "
            "own white-box attack, and attacks crafted on the others transfer no better.")
    tm = res["evaluations"].get("eval-transfer")
    if tm:
        from cvgr.evaluate import plot_matrix

        d.img(plot_matrix(tm, figs / "transfer.png",
                          title=f"complex GR nets, PGD(8) at eps={tm['eps']:g}"),
              "transfer matrix")
        d.table(["source \\ target", *tm["targets"]],
                [[src, *row] for src, row in zip(tm["sources"], tm["accuracy"], strict=True)])
        d.p("Rows: model the attack was crafted on; columns: model evaluated; diagonal: "
            "white-box. Seeds: " + ", ".join(f"{k} = {model_label(v)}"
                                            for k, v in res["seeded"].items()) + ".")
    d.verdict(vs["transfer_whitebox_strongest"], "white-box strongest")
    d.verdict(vs["transfer_consistent"], "consistent across seeds")

    # 6. time
    d.h(2, "6. Training time")
    d.claim("Seed table (MNIST, RTX 2070 Super), as ratios to real no defense: real GR 1.33, "
            "real PGD-4 AT 2.31, real PGD-8 AT 3.64, complex none 1.42, complex GR 2.39. "
            "Ours must beat these ratios.")
    ratios = time_ratios(res)
    d.table(["model", "seconds/epoch", "ratio", "paper ratio"],
            [[LABELS.get(lab, lab), res["training"].get(tid, {}).get("seconds_per_epoch"),
              ratios.get(lab), PAPER_TIME_RATIOS.get(lab)]
             for lab, tid in res["models"].items()])
    d.img(plot_times(res, figs / "training_time.png"), "training-time ratios")
    d.p(f"Seconds per epoch of the training pass (validation excluded), mean over epochs; "
        f"measured on {res.get('device') or 'this machine'} with up to "
        f"{res.get('workers', 1)} concurrent job(s)"
        + (" - concurrent jobs share the cores, so treat ratios with care" if
           res.get("workers", 1) > 1 else "") + ".")
    d.verdict(vs["time"])

    # 7. masking
    d.h(2, "7. Black-box and AutoAttack checks of the GR models")
    d.claim("The robustness of GR nets is not gradient masking: black-box attacks (NES, "
            "transfer) are weaker than white-box, and a stronger independent attack agrees.")
    rows = []
    for kind in ("complex", "real"):
        m = res["evaluations"].get(f"eval-masking-{kind}-gr")
        aa = res["evaluations"].get(f"eval-autoattack-{kind}-gr")
        if m:
            c = m["checks"]
            bb = c["black_box_stronger"]["black_box"]
            nes = bb.get("nes")
            rows.append([f"{kind} GR", m.get("n"), m.get("clean_accuracy"),
                         c["black_box_stronger"]["white_box_accuracy"],
                         next((v["accuracy"] for k, v in bb.items() if k != "nes"), None),
                         f"{nes['accuracy']:.3f} (PGD {nes['white_box_accuracy']:.3f}, "
                         f"n={nes['n']})" if nes else None,
                         f"{aa['robust_accuracy']:.3f} (PGD {aa['pgd_accuracy']:.3f}, "
                         f"n={aa['n']})" if aa and "skipped" not in aa else None,
                         c["large_eps_not_broken"]["accuracy"],
                         ", ".join(m["flagged"]) or "none"])
    if rows:
        d.table(["model", "images", "clean", f"PGD(8) @{eps_c:g}", "transfer from undefended",
                 "NES", "AutoAttack", "PGD @ eps 0.5", "masking flags"], rows)
        ran = sorted({aa_label(a) for a in (res["evaluations"].get(f"eval-autoattack-{k}-gr")
                                            for k in ("complex", "real"))
                      if a and "skipped" not in a})
        d.p("NES and AutoAttack run on the first images only, each beside PGD(8) on the "
            f"same images; AutoAttack version that ran: {', '.join(ran) or 'none'}; flags: "
            "black_box_stronger (a black-box attack beats white-box), large_eps_not_broken "
            "(accuracy above 10% at eps 0.5), loss_not_rising (PGD loss not growing with steps).")
    d.verdict(vs["masking_complex_gr"], "complex GR")
    d.verdict(vs["masking_real_gr"], "real GR")

    d.h(2, "Files")
    d.p("results.json holds every number above (and the plan); evals/ holds one JSON per "
        "evaluation; runs/ holds one `cvgr train` run directory per model.")

    title = f"cvgr reproduction: {ds} ({b['name']})"
    md = d.markdown(out)
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(md))
    page = d.html(title)
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(page))
    summ = summary_markdown(res)
    atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text(summ))
    write_json(out / "results.json", res)
    return vs
