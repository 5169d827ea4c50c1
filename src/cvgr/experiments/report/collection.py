"""Gathering a reproduction directory's raw numbers into one JSON-ready dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvgr.experiments.kept_runs import kept_dir, kept_rows
from cvgr.io import read_json, read_jsonl
from cvgr.train.rundir import RunDir
from cvgr.zoo.adopt import adopted_from

__all__ = ["PLAN_KEYS", "collect"]

PLAN_KEYS = ("dataset", "budget", "settings", "archs", "eps", "claim_eps", "n_images",
             "train_images", "epochs", "models", "sweep", "seeded")
"""What a plan holds besides its jobs, copied into the collected results."""


def _seconds_per_epoch(rows: list[dict[str, Any]]) -> float | None:
    vals = [v for v in (r.get("train_seconds", r.get("seconds")) for r in rows)
            if isinstance(v, int | float)]
    return sum(vals) / len(vals) if vals else None


def _finished_eval(f: Path) -> dict[str, Any] | None:
    """An evaluation's stored JSON, or None when it is missing or unreadable (truncated,
    damaged): not finished, as the runner sees it (it runs such a job again)."""
    if not f.is_file():
        return None
    try:
        stored = read_json(f)
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def collect(out_dir: str | os.PathLike, plan: Mapping[str, Any],
            outcome: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything measured under ROOT for `plan`, as one JSON-ready dict."""
    out_dir = Path(out_dir)
    training: dict[str, Any] = {}
    evaluations: dict[str, Any] = {}
    for job in plan["jobs"]:
        if job["task"] == "train":
            mfile = out_dir / "runs" / job["id"] / "metrics.jsonl"
            rows = read_jsonl(mfile) if mfile.is_file() else []
            kept = kept_rows(out_dir, job) if len(rows) < plan["epochs"] else None
            rows = kept or rows
            run_dir = kept_dir(out_dir, job) if kept else out_dir / "runs" / job["id"]
            c = job["config"]
            training[job["id"]] = {
                "kind": "complex" if c["complex"] else "real", "arch": c["arch"],
                "beta": c.get("beta", 0.0), "noise": c.get("noise", 0.0),
                "adv_steps": c.get("adv_steps") if c.get("adv_eps") else None,
                "seed": c.get("seed", 0), "epochs_done": len(rows),
                "final": rows[-1] if rows else None,
                "seconds_per_epoch": _seconds_per_epoch(rows),
                "source": adopted_from(out_dir / "runs" / job["id"]),  # "zoo:<name>" or None
                "kept": kept is not None,  # kept without its weights (experiments.kept_runs)
                # where its seconds were measured (a zoo model's: where the zoo trained it)
                "hardware": RunDir(run_dir).environment().get("hardware"),
            }
        else:
            stored = _finished_eval(out_dir / "evals" / f"{job['id']}.json")
            if stored is not None and stored.get("config") == job["config"] \
                    and "result" in stored:
                evaluations[job["id"]] = stored["result"]
    pending = [j["id"] for j in plan["jobs"]
               if (training[j["id"]]["epochs_done"] < plan["epochs"] if j["task"] == "train"
                   else j["id"] not in evaluations)]
    log = out_dir / "log.jsonl"
    train_ids = {j["id"] for j in plan["jobs"] if j["task"] == "train"}
    done = [r for r in (read_jsonl(log) if log.is_file() else [])
            if r.get("status") == "done" and r.get("id") in train_ids]
    workers = max((int(r.get("workers", 1)) for r in done), default=1)
    devices = sorted({str(r["device"]) for r in done if r.get("device")})
    hardware = sorted({str(r["hardware"]) for r in done if r.get("hardware")})
    res = {k: plan[k] for k in PLAN_KEYS}
    res.update(training=training, evaluations=evaluations,
               failed=dict((outcome or {}).get("failed", {})),
               blocked=list((outcome or {}).get("blocked", [])), pending=pending,
               workers=workers, device=", ".join(devices) or None,
               hardware="; ".join(hardware) or None)
    return res
