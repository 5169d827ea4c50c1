"""`reproduce`: plan -> run the jobs (resumable) -> collect -> report, for one dataset."""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cvgr.errors import UserError
from cvgr.experiments.kept_runs import done_with_kept_runs, keep_runs
from cvgr.experiments.plan import build_plan
from cvgr.experiments.ray_executor import RayOptions
from cvgr.experiments.report import collect, write_report
from cvgr.experiments.runner import adopt_zoo_models, format_seconds, is_done, run_jobs
from cvgr.io import LOCK_FILE, check_output_dir, locked_dir, read_json, write_json
from cvgr.options import RunOptions

__all__ = ["EXECUTORS", "RayOptions", "RunOptions", "report_only", "reproduce", "select_jobs"]

PLAN_FILE = "plan.json"
EXECUTORS = ("local", "ray")


def _claim_dir(out: Path, plan: dict[str, Any], write: bool = True) -> None:
    """Refuse a directory holding another reproduction or other files; write plan.json."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output directory {out} is a file; give a directory", param="out")
    pfile = out / PLAN_FILE
    if pfile.is_file():
        stored = read_plan(pfile)
        if stored.get("jobs") != plan["jobs"]:
            what = f"{stored.get('dataset')!r}, budget {stored.get('budget', {}).get('name')!r}"
            raise UserError(f"output directory {out} holds another reproduction ({what}, or "
                            "one made by another cvgr version); give another one or delete it",
                            param="out")
        return
    if out.is_dir() and any(f.name != LOCK_FILE for f in out.iterdir()):
        raise UserError(f"output directory {out} is not empty and holds no reproduction; "
                        "give a new or empty directory", param="out")
    if write:
        write_json(pfile, plan)


def read_plan(pfile: Path) -> dict[str, Any]:
    """A reproduction's plan.json, or a one-line UserError (damaged, or not a plan)."""
    try:
        plan = read_json(pfile)
    except (OSError, ValueError) as e:
        raise UserError(f"{pfile} is unreadable ({e.strerror if isinstance(e, OSError) else e});"
                        " the reproduction's plan is damaged: give another output directory or "
                        "delete it", param="out") from None
    from cvgr.experiments.report.collection import PLAN_KEYS

    if not isinstance(plan, dict) or not isinstance(plan.get("jobs"), list) \
            or any(k not in plan for k in PLAN_KEYS) \
            or not all(isinstance(j, dict) and "id" in j and "task" in j for j in plan["jobs"]):
        raise UserError(f"{pfile} is not a cvgr reproduction plan (a JSON object with its "
                        "jobs); give another output directory or delete it", param="out")
    return plan


def reproduce(dataset: str, budget: str, out: str | os.PathLike, *, workers: int = 1,
              device: str | None = None, data_root: str | os.PathLike | None = None,
              real_arch: str | None = None, complex_arch: str | None = None,
              quiet: bool = False, deterministic: bool = False,
              executor: str = "local", ray: RayOptions | None = None,
              gr_step: str = "auto", n_images: int | None = None, use_zoo: bool = True,
              only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the reproduction into OUT and write its report.

    `executor` "local" runs the jobs in this process (`workers` 1) or in `workers` local
    processes; "ray" runs each as a Ray task (`ray`: address, resources, shared filesystem).
    `gr_step` is how training jobs run the GR step (:mod:`cvgr.defenses.gr_step`).
    `n_images` caps the test images of every evaluation (:func:`build_plan`). `use_zoo` takes a
    shipped zoo model where a train job's configuration is identical to a zoo entry's
    (:mod:`cvgr.zoo.adopt`; False: train it here). `only`: run just the jobs whose ids match
    one of these shell patterns (``"eval-transfer"``, ``"train-*-gr-beta*"``) and the jobs
    they depend on; the report marks the rest as pending.
    `quiet`: no progress messages and no progress bars (``--quiet``); otherwise messages go
    to stderr and bars show for one local worker on a terminal.
    Returns {"outcome": the runner's summary, "verdicts", "report": path of report.md}.
    Finished runs and evaluations are skipped, so calling it again only redoes the report.
    """
    from cvgr.data import locate

    if executor not in EXECUTORS:
        raise UserError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}",
                        param="executor")
    if executor == "ray":
        from cvgr.experiments.ray_executor import check_reachable

        (ray or RayOptions()).check()
        check_reachable((ray or RayOptions()).address)  # a wrong address fails in seconds
        if workers != 1:
            raise UserError("workers applies to the local executor; on Ray the number of "
                            "jobs at once follows cpus_per_job and gpus_per_job",
                            param="workers")
    say = _silent if quiet else _to_stderr
    plan = build_plan(dataset, budget, real_arch=real_arch, complex_arch=complex_arch,
                      n_images=n_images)
    jobs = select_jobs(plan["jobs"], only)
    from cvgr.defenses.gr_step import resolve_gr_step

    resolve_gr_step(gr_step, 0)  # an unknown GR step: one line before any work
    options = _run_options(device, data_root, quiet, deterministic, executor, workers)
    options = options.replace(gr_step=gr_step, use_zoo=use_zoo)
    out = check_output_dir(out, "out")
    locate(dataset, data_root)  # a missing dataset: one clear message before any work
    _claim_dir(out, plan, write=False)  # refuse a foreign directory before touching it
    with locked_dir(out, "out"):  # one reproduction per directory at a time
        _claim_dir(out, plan)
        return _reproduce(dataset, budget, out, plan, jobs, options, workers, executor, ray,
                          say)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _silent(message: str) -> None:
    """quiet: no progress messages."""


def select_jobs(jobs: list[Any], only: Sequence[str] | None) -> list[Any]:
    """The jobs whose ids match one of the shell patterns `only` (all for None), with every
    job they depend on, in plan order. A pattern that matches nothing is a UserError."""
    if not only:
        return list(jobs)
    by_id = {j["id"]: j for j in jobs}
    for pattern in only:
        if not fnmatch.filter(by_id, pattern):
            raise UserError(f"only: {pattern!r} matches no job of this plan; `cvgr reproduce "
                            "--list` shows the job ids", param="only")
    want = {i for i in by_id if any(fnmatch.fnmatchcase(i, p) for p in only)}
    todo = list(want)
    while todo:
        for dep in by_id[todo.pop()]["deps"]:
            if dep not in want:
                want.add(dep)
                todo.append(dep)
    return [j for j in jobs if j["id"] in want]


def _reproduce(dataset: str, budget: str, out: Path, plan: dict[str, Any], jobs: list[Any],
               options: RunOptions, workers: int, executor: str, ray: RayOptions | None,
               say: Callable[[str], None]) -> dict[str, Any]:
    part = "" if len(jobs) == len(plan["jobs"]) else f" of the plan's {len(plan['jobs'])}"
    say(f"reproducing on {dataset}, budget {budget}: {len(jobs)} jobs{part} into {out}")
    if options.use_zoo:  # every zoo model of the plan, so that a partial run reports them all
        adopt_zoo_models(plan["jobs"], out)
    done = done_with_kept_runs(plan["jobs"], out, is_done)  # a kept sweep run is finished
    if executor == "ray":
        from cvgr.experiments.ray_executor import run_jobs_ray

        outcome = run_jobs_ray(jobs, out, ray, options=options, done_fn=done, log=say)
    else:
        outcome = run_jobs(jobs, out, workers, options=options, done_fn=done, log=say)
    keep_runs(out, plan)
    res = collect(out, plan, outcome)
    vs = write_report(res, out)
    say(f"finished in {format_seconds(outcome['seconds'])}: {len(outcome['ran'])} run, "
        f"{len(outcome['skipped'])} already done, {len(outcome['failed'])} failed; "
        f"report: {out / 'report.md'} and {out / 'report.html'}")
    return {"outcome": outcome, "verdicts": vs, "report": out / "report.md"}


def _run_options(device: str | None, data_root: str | os.PathLike | None, quiet: bool,
                 deterministic: bool, executor: str, workers: int) -> RunOptions:
    """The options every job gets. Locally the device is checked (and defaulted) here,
    before any work; on Ray the driver's machine may have no GPU, so the Ray executor
    checks it against the cluster and each task resolves it on its node. Bars and a job's
    own messages show only for one local worker (bars only on a terminal: cvgr.progress),
    and neither with `quiet`."""
    from cvgr.devices import resolve_device

    local = executor == "local"
    if local:
        device = str(resolve_device(device))
    alone = local and workers == 1
    return RunOptions(device=device, data_root=None if data_root is None else str(data_root),
                      progress=alone and not quiet, quiet=quiet or not alone,
                      deterministic=deterministic)


def report_only(out: str | os.PathLike) -> dict[str, Any]:
    """Rewrite the report of OUT from what is on disk (no job is run)."""
    out = Path(out)
    pfile = out / PLAN_FILE
    if not pfile.is_file():
        raise UserError(f"{out} holds no reproduction ({PLAN_FILE} missing)", param="out")
    plan = read_plan(pfile)
    check_output_dir(out, "out")
    with locked_dir(out, "out"):
        keep_runs(out, plan)
        res = collect(out, plan)
        return {"verdicts": write_report(res, out), "report": out / "report.md"}
