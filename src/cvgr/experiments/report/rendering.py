"""The whole report: the preamble and summary table, then each section (sections) with the
verdicts of its claims, written as Markdown (report.md, summary.md) and as one
self-contained HTML page (html_page), beside results.json."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvgr.experiments.plan import model_label
from cvgr.experiments.report.document import Doc
from cvgr.experiments.report.figures import LABELS
from cvgr.experiments.report.html_page import html_page
from cvgr.experiments.report.sections import SECTIONS, Ctx, Section
from cvgr.experiments.report.verdicts import (
    CLAIMS,
    Results,
    Verdict,
    curve_at,
    curve_mean,
    curve_of,
    time_ratios,
    time_seconds,
    verdicts,
)
from cvgr.io import atomic_write, write_json
from cvgr.names import Attack
from cvgr.paper import PAPER_TIME_RATIOS

__all__ = ["SECTIONS", "SUMMARY_HEADERS", "Ctx", "Doc", "Section", "build_document",
           "summary_markdown", "write_report"]


def _summary_rows(res: Results) -> list[list[Any]]:
    ratios, secs = time_ratios(res), time_seconds(res)
    sizes = (res["evaluations"].get("eval-sizes") or {}).get("models", {})
    rows = []
    for lab in res["models"]:
        kind = lab.split("-", 1)[0]
        f, p = curve_of(res, Attack.FGSM, lab), curve_of(res, Attack.PGD, lab)
        any_curve = p or f
        rows.append([LABELS.get(lab, lab), sizes.get(kind, {}).get("params"),
                     sizes.get(kind, {}).get("macs"),
                     any_curve["accuracy"][0] if any_curve else None,
                     curve_at(f, res["claim_eps"]) if f else None,
                     curve_at(p, res["claim_eps"]) if p else None,
                     curve_mean(p) if p else None,
                     secs.get(lab), ratios.get(lab),
                     PAPER_TIME_RATIOS.get(lab, 1.0 if lab == "real-none" else None)])
    return rows


SUMMARY_HEADERS = ["model", "params", "MACs/image", "clean acc", "FGSM acc @claim eps",
                   "PGD(8) acc @claim eps", "mean PGD(8) acc", "s/epoch", "time ratio",
                   "paper ratio"]


def _summary_table(d: Doc, res: Results) -> None:
    d.table([h.replace("@claim eps", f"@{res['claim_eps']:g}") for h in SUMMARY_HEADERS],
            _summary_rows(res))


def summary_markdown(res: Results) -> str:
    """The main table alone (for the README)."""
    d = Doc()
    _summary_table(d, res)
    return d.markdown()


def _preamble(d: Doc, res: Results, vs: Mapping[str, Verdict]) -> None:
    b, s, n = res["budget"], res["settings"], res["n_images"]
    d.h(1, f"Reproduction report: {res['dataset']}, budget '{b['name']}'")
    d.p(f"Paper: Yeats, Chen, Li, \"Improving Gradient Regularization using Complex-Valued "
        f"Neural Networks\" (ICML 2021). Real {res['archs']['real']} against complex "
        f"{res['archs']['complex']}; {res['epochs']} epoch(s) on {res['train_images']:,} training "
        f"images; attacks on the first {n:,} test images; claim eps {res['claim_eps']:g}. "
        f"Settings: {s['source']}. Budget: {b['description']}.")
    if res["failed"] or res["blocked"]:
        d.p("Incomplete: failed jobs " + "; ".join(f"{k} ({v})" for k, v in res["failed"].items())
            + (f"; not run: {', '.join(res['blocked'])}" if res["blocked"] else "")
            + ". Rerun the same command to retry them.")
    pending = res.get("pending") or []
    if pending:
        d.p(f"Pending ({len(pending)} of the plan's jobs not finished yet; what they would "
            "measure is marked as not measured, never extrapolated): " + ", ".join(pending)
            + ".")
    zoo = {tid: t["source"] for tid, t in res["training"].items() if t.get("source")}
    if zoo:
        d.p("Taken from the model zoo (identical training configuration; `--retrain` trains "
            "them here instead): " + ", ".join(f"{model_label(tid)} = {src}"
                                              for tid, src in zoo.items()) + ".")
    kept = [tid for tid, t in res["training"].items() if t.get("kept")]
    if kept:
        d.p("Kept runs (trained in an earlier sitting; their configuration and metrics are "
            "kept, their weights are not, and no unfinished job needs them): "
            + ", ".join(model_label(tid) for tid in kept) + ".")
    d.p("Verdicts: 'holds' / 'does not hold' beyond a margin of max(0.02, 1/sqrt(n)) "
        "accuracy; 'inconclusive' within it. Small budgets give noisy numbers: read the "
        "quick budget's verdicts as a smoke test, not as evidence.")
    d.h(2, "Summary")
    _summary_table(d, res)
    d.table(["claim", "verdict"], [[c.name, vs[c.key]["status"]] for c in CLAIMS])


def build_document(res: Results, vs: Mapping[str, Verdict], out: Path) -> Doc:
    """The whole report as blocks: preamble, then each section with its claims' verdicts."""
    d = Doc()
    _preamble(d, res, vs)
    ctx = Ctx(res, out / "figures", out)
    for i, (key, section) in enumerate(SECTIONS.items(), start=1):
        d.h(2, f"{i}. {section.title}")
        d.claim(section.claim)
        section.body(d, ctx)
        for c in CLAIMS:
            if c.section == key:
                d.verdict(vs[c.key], c.what)
    d.h(2, "Files")
    d.p("results.json holds every number above (and the plan); evals/ holds one JSON per "
        "evaluation; runs/ holds one `cvgr train` run directory per model.")
    return d


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_report(res: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Verdict]:
    """Figures under OUT/figures, OUT/report.md, OUT/report.html, OUT/summary.md and
    OUT/results.json (the collected numbers plus verdicts). Returns the verdicts."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    vs = verdicts(res)
    res["verdicts"] = vs
    d = build_document(res, vs, out)
    _write_text(out / "report.md", d.markdown())
    _write_text(out / "report.html",
                html_page(d, f"cvgr reproduction: {res['dataset']} ({res['budget']['name']})"))
    _write_text(out / "summary.md", summary_markdown(res))
    write_json(out / "results.json", res)
    return vs
