"""The zoo table: one row per catalogue entry with what is measured, and its text cells."""

from __future__ import annotations

import os
from typing import Any

from cvgr import markdown
from cvgr.io import read_json
from cvgr.zoo.catalogue import CATALOGUE, eval_file, weights_digest, weights_file

__all__ = ["aa_cell", "cell", "markdown_table", "rows", "table"]


def rows(zoo_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per catalogue entry, with what is measured (None where nothing is)."""
    from cvgr.checkpoint import read_record
    from cvgr.models import count_parameters, create_model, resolve

    out = []
    for e in CATALOGUE.values():
        cfg = e.config()
        spec = resolve(cfg.arch)
        r: dict[str, Any] = {
            "name": e.name, "dataset": e.dataset, "summary": e.summary,
            "architecture": f"{spec.reference_name} ({'complex' if cfg.complex else 'real'})",
            "defense": cfg.defense,
            "parameters": count_parameters(create_model(cfg.arch, complex=cfg.complex)),
            "shipped": False, "evaluated": False, "clean_accuracy": None, "pgd8": None,
            "autoattack": None, "version": None, "eps": None, "n_images": None,
            "seconds_per_epoch": None, "epochs": None, "device": None, "hardware": None,
            "eval_device": None, "flags": [], "further": [], "strongest": None,
        }
        wf = weights_file(e.name, zoo_dir)
        if wf.is_file():
            rec = read_record(wf)
            z = rec.get("zoo", {})
            secs = [s for s in z.get("train_seconds_per_epoch", []) if isinstance(s, int | float)]
            r.update(shipped=True, epochs=rec.get("epochs_completed"),
                     seconds_per_epoch=sum(secs) / len(secs) if secs else None,
                     device=z.get("device"), hardware=z.get("hardware"),
                     val_accuracy=rec.get("metrics", {}).get("val_acc"))
            ef = eval_file(e.name, zoo_dir)
            ev = read_json(ef) if ef.is_file() else {}
            if ev.get("weights_sha256") == weights_digest(wf):
                aa = ev.get("autoattack") or {}
                r.update(evaluated="autoattack" in ev, clean_accuracy=ev.get("clean_accuracy"),
                         pgd8=(ev.get("pgd8") or {}).get("accuracy"),
                         autoattack=aa.get("robust_accuracy"), version=ev.get("version"),
                         eps=ev.get("eps"), n_images=ev.get("n_images"),
                         eval_device=ev.get("device"),
                         flags=list(aa.get("flags") or []),
                         further=[{k: f.get(k) for k in ("attacks_spec", "seed", "attacked",
                                                         "worst_case_robust_accuracy")}
                                  for f in ev.get("further", [])])
                if r["autoattack"] is not None:  # the lowest any stored evaluation reached
                    r["strongest"] = min([r["autoattack"], *(f["worst_case_robust_accuracy"]
                                                             for f in r["further"])])
        out.append(r)
    return out


def cell(v: Any, fmt: str = ".3f") -> str:
    """A number as table text ("-" for None)."""
    return "-" if v is None else format(v, fmt)


def aa_cell(r: dict[str, Any]) -> str:
    """A row's AutoAttack text: the accuracy, its version if not standard, AutoAttack's own
    flag, and the worst case after further attacks where that is lower."""
    if r["autoattack"] is None:  # measured up to PGD(8), AutoAttack not finished yet
        return "pending" if r.get("clean_accuracy") is not None else "-"
    aa = cell(r["autoattack"])
    if r["version"] != "standard":
        aa += f" ({r['version']})"
    if r.get("flags"):
        aa += " (flagged)"
    if r.get("strongest") is not None and r["strongest"] < r["autoattack"]:
        aa += f"; {cell(r['strongest'])} with further attacks"
    return aa


def table(rs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the zoo table."""
    head = ["name", "architecture", "defense", "parameters", "clean acc", "PGD(8) acc",
            "AutoAttack acc", "eps", "images", "evaluated on", "train s/epoch",
            "trained on"]
    body = []
    for r in rs:
        if not r["shipped"]:
            state = "not trained yet"
            cells = [state, "-", "-", "-", "-", "-"]
        elif r["clean_accuracy"] is None:
            cells = ["not evaluated", "-", "-", "-", "-", "-"]
        else:
            aa = aa_cell(r)
            cells = [cell(r["clean_accuracy"]), cell(r["pgd8"]), aa, cell(r["eps"], "g"),
                     str(r["n_images"]), r.get("eval_device") or "-"]
        hw = "-" if not r["shipped"] else f"{r['device']}: {r['hardware']}"
        body.append([r["name"], r["architecture"], r["defense"], f"{r['parameters']:,}", *cells,
                     cell(r["seconds_per_epoch"], ".1f"), hw])
    return head, body


def markdown_table(rs: list[dict[str, Any]]) -> str:
    """The zoo table as Markdown."""
    return markdown.table(*table(rs))
