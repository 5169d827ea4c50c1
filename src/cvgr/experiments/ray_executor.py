"""Run the plan's jobs on a Ray cluster: one Ray task per job, dependencies passed as task
results, so Ray starts a job as soon as the jobs it needs have finished (no polling).

Two ways to get files to and from the workers, chosen once per call:

* shared: every node sees OUT at the same path (NFS, a single machine). A task runs
  ``execute(job, OUT, options)`` and writes there, exactly as a local worker does.
* shipped: the nodes do not share OUT. A task unpacks the files it needs (the run
  directories of the jobs it depends on, which arrive as those jobs' task results, and its
  own partial run if one exists) into a scratch directory of its node, runs ``execute``
  there, and returns its output files; the driver writes them atomically under OUT. OUT ends
  up with exactly the local runner's layout, so the report, resuming and `is_done` do not
  know the difference.

``shared_fs="auto"`` decides by writing a random token into OUT and asking one task on
every node whether it reads the same token at the same path. A worker that dies (killed,
out of memory, its node lost) is retried by Ray (`max_retries`); a train job resumes from
its last finished epoch: from OUT when shared, and from the node's scratch copy when shipped
and retried on the same node (on another node it starts again from the driver's copy).
Ray is imported only when this executor is used (``pip install 'cvgr[cluster]'``).

Three modules: `cvgr.experiments.ray_cluster` (the options and the checks before any job
runs), this one (the driver: submitting the jobs and recording their outcomes) and
`cvgr.experiments.ray_task` (what runs on a worker, and a job's files as data).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvgr.experiments.ray_cluster import (
    CONNECT_TIMEOUT,
    TOKEN_FILE,
    RayOptions,
    check_reachable,
    connect,
    decide_shared,
    import_ray,
    job_options,
    slot_count,
)
from cvgr.experiments.ray_task import pack, run_task, write_files
from cvgr.experiments.runner import ExecuteFn, Job, Progress, execute, is_done
from cvgr.options import RunOptions

__all__ = ["CONNECT_TIMEOUT", "RayOptions", "check_reachable", "run_jobs_ray"]


def run_jobs_ray(jobs: list[Job], out_dir: str | os.PathLike, cluster: RayOptions | None = None,
                 *, options: RunOptions | None = None, execute_fn: ExecuteFn = execute,
                 done_fn: Callable[[Job, Any], bool] = is_done,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`run_jobs` on Ray: same outcome dict, same progress lines, log.jsonl and failures.json."""
    cluster = cluster or RayOptions()
    cluster.check()
    options = options or RunOptions()
    check_reachable(cluster.address)
    ray = import_ray()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started_here = connect(ray, cluster)
    try:
        slots = slot_count(ray, cluster)
        options = job_options(ray, cluster, options).replace(executor="ray", jobs=slots)
        prog = Progress(jobs, out_dir, done_fn, say, f"as Ray tasks ({slots} at a time)", slots)
        if prog.todo:
            token = decide_shared(ray, out_dir, cluster.shared_fs)
            say(f"  Ray: {'shared' if token else 'no shared'} filesystem for {out_dir}")
            try:
                _Driver(ray, prog, cluster, options, execute_fn, jobs, token).run()
            finally:
                (out_dir / TOKEN_FILE).unlink(missing_ok=True)
        return prog.outcome()
    finally:
        if started_here:
            ray.shutdown()


# -- the driver ----------------------------------------------------------------------------------


class _Driver:
    """Submits every job at once (each with its dependencies' result refs as arguments) and
    records the outcomes as they arrive."""

    def __init__(self, ray: Any, prog: Progress, cluster: RayOptions, options: RunOptions,
                 execute_fn: ExecuteFn, jobs: list[Job], token: str | None) -> None:
        self.ray, self.prog, self.cluster, self.options = ray, prog, cluster, options
        self.execute_fn, self.token, self.shared = execute_fn, token, token is not None
        self.by_id = {j["id"]: j for j in jobs}
        self.order = {j["id"]: i for i, j in enumerate(jobs)}
        self.task = ray.remote(run_task).options(
            num_cpus=cluster.cpus_per_job, num_gpus=cluster.gpus_per_job,
            max_retries=cluster.max_retries, retry_exceptions=False)
        self.refs: dict[str, Any] = {}
        self.pending: dict[Any, Job] = {}
        self.announced: set[str] = set()

    def run(self) -> None:
        try:
            for job in _topological(self.prog.todo):
                self._submit(job)
            self._announce_ready()
            while self.pending:
                self._collect()
        except BaseException:
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
            raise

    def _submit(self, job: Job) -> None:
        args = []
        for d in job["deps"]:
            if d in self.refs:
                args.append(self.refs[d])
            elif d in self.prog.finished:
                args.append(None if self.shared else self.ray.put(
                    pack(self.prog.out_dir, self.by_id[d])))
            else:
                self.prog.block(job, "its dependencies are not in the plan")
                return
        own = None
        if not self.shared and job["task"] == "train":
            files = pack(self.prog.out_dir, job)
            own = self.ray.put(files) if files else None
        out_dir = str(self.prog.out_dir)
        ref = self.task.remote(job, out_dir, self.options, self.token, self.execute_fn, own,
                               *args)
        self.refs[job["id"]] = ref
        self.pending[ref] = job

    def _announce_ready(self) -> None:
        """A job's start line when all it needs is finished (Ray starts it at once if a
        worker is free)."""
        for job in sorted(self.pending.values(), key=lambda j: self.order[j["id"]]):
            if job["id"] not in self.announced and all(
                    d in self.prog.finished for d in job["deps"]):
                self.announced.add(job["id"])
                self.prog.start(job)

    def _collect(self) -> None:
        ray = self.ray
        ray.wait(list(self.pending), num_returns=1)
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for ref in sorted(ready, key=lambda r: self.order[self.pending[r]["id"]]):
            job = self.pending.pop(ref)
            try:
                res = ray.get(ref)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - a failed job must not stop the rest
                self._failed(job, e)
                continue
            if not self.shared:
                write_files(self.prog.out_dir, job, res.pop("files"))
            self.prog.done(job, res, node=res.get("node"))
        self._announce_ready()

    def _failed(self, job: Job, e: Exception) -> None:
        if any(self.prog.dead(d) for d in job["deps"]):
            self.prog.block(job)
            return
        cause = getattr(e, "cause", None)
        err = cause if isinstance(cause, BaseException) else e
        self.prog.fail(job, err, tb=str(e))


def _topological(jobs: list[Job]) -> list[Job]:
    """Jobs with each one after the jobs of the list it depends on (plan order otherwise)."""
    ids = {j["id"] for j in jobs}
    out: list[Job] = []
    placed: set[str] = set()
    rest = list(jobs)
    while rest:
        nxt = [j for j in rest if all(d in placed or d not in ids for d in j["deps"])]
        if not nxt:  # a cycle (check_plan forbids it): keep the given order
            nxt = rest
        for j in nxt:
            out.append(j)
            placed.add(j["id"])
        rest = [j for j in rest if j["id"] not in placed]
    return out

