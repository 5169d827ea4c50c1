"""Finished training runs kept without their weights, so that a reproduction outlives its machine.

A reproduction at the paper's budget takes longer than one sitting, and only its report is
committed (``tools/paper_export.sh``), never the weights of the models it trained (the zoo's
are shipped and taken again). Some of those models matter only through their training
metrics: the beta sweep of Figure 1 reads each run's final classification and GR losses, and
no other job loads its weights. Such a run is *kept*:

    OUT/kept/<job id>/config.json     the run's config.json (the resolved TrainConfig)
    OUT/kept/<job id>/metrics.jsonl   its per-epoch metrics, the final epoch last

A kept run counts as the finished job (:func:`done_with_kept_runs`) when its configuration is
the job's and no unfinished job of the plan needs the run's weights (the sweep runs, and every
run whose evaluations are all finished); the report reads its metrics and says which runs are
kept ones. A run whose weights an unfinished job needs is trained again where its weights are
missing, as before.

Example::

    keep_runs(out_dir, plan)      # after the jobs ran: keep every finished run trained here
    rows = kept_rows(out_dir, job)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cvgr.experiments.jobs import Job
from cvgr.io import atomic_write, read_json, read_jsonl

__all__ = ["KEPT_DIR", "done_with_kept_runs", "keep_runs", "kept_dir", "kept_rows"]

KEPT_DIR = "kept"
"""The directory of a reproduction that holds its kept runs."""

_FILES = ("config.json", "metrics.jsonl")

def kept_dir(out_dir: str | os.PathLike, job: Job) -> Path:
    """Where `job`'s run is kept: OUT/kept/<id>/."""
    return Path(out_dir) / KEPT_DIR / str(job["id"])


def keep_runs(out_dir: str | os.PathLike, plan: Mapping[str, Any]) -> list[str]:
    """Copy config.json and metrics.jsonl of every finished train job of `plan` that was
    trained here (not taken from the zoo, which ships its weights) into OUT/kept/<id>/.
    Returns the ids kept now; one already kept with the same configuration is left as it is."""
    from cvgr.experiments.runner import is_done, job_output
    from cvgr.zoo.adopt import adopted_from

    kept = []
    for job in plan["jobs"]:
        if job["task"] != "train" or kept_rows(out_dir, job) is not None:
            continue
        run = job_output(job, out_dir)
        if not is_done(job, out_dir) or adopted_from(run) is not None:
            continue
        dest = kept_dir(out_dir, job)
        for name in _FILES:  # metrics last: without it, nothing is kept
            atomic_write(dest / name, _copier(run / name))
        kept.append(str(job["id"]))
    return kept


def _copier(src: Path) -> Callable[[str], object]:
    return lambda tmp: shutil.copyfile(src, tmp)


def kept_rows(out_dir: str | os.PathLike, job: Job) -> list[dict[str, Any]] | None:
    """The per-epoch metrics of `job`'s kept run, or None: none kept, one of another
    configuration, an unreadable one, or one with fewer epochs than the job trains."""
    from cvgr.train import TrainConfig

    d = kept_dir(out_dir, job)
    if not all((d / name).is_file() for name in _FILES):
        return None
    try:
        cfg = TrainConfig.from_dict(dict(job["config"])).resolved()
        stored = TrainConfig.from_dict(read_json(d / "config.json")["config"])
        rows = read_jsonl(d / "metrics.jsonl")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if stored != cfg or len(rows) != cfg.epochs or not all(isinstance(r, dict) for r in rows):
        return None
    return rows


def done_with_kept_runs(jobs: Iterable[Job], out_dir: str | os.PathLike,
                      done_fn: Callable[[Job, Any], bool]) -> Callable[[Job, Any], bool]:
    """`done_fn`, except that a train job also counts as finished in OUT when it is kept
    there and no job of `jobs` that `done_fn` finds unfinished needs it (the runner then
    leaves it, instead of training it again)."""
    needed = {dep for j in jobs if not done_fn(j, out_dir) for dep in j.get("deps", [])}

    def done(job: Job, out_dir: Any) -> bool:
        if done_fn(job, out_dir):
            return True
        return job["task"] == "train" and job["id"] not in needed \
            and kept_rows(out_dir, job) is not None

    return done
