"""Run a list of plain-JSON jobs: skip finished ones, respect dependencies, N local processes.

A job is finished when its output exists and matches its config (a train job: the run
directory holds that run, finished; an evaluate job: ``evals/<id>.json`` stores that config).
Outputs are written atomically, so an interrupted call loses only the jobs in flight, and
a train job in flight resumes from its last finished epoch. The functions `execute` and
`is_done` are the whole contract with an executor: any engine that can call
``execute(job, root, options)`` on a machine seeing ROOT can run the plan.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from pathlib import Path
from typing import Any

from cvgr.io import append_jsonl, read_json, write_json

__all__ = ["execute", "format_seconds", "is_done", "job_output", "run_jobs"]

Job = dict[str, Any]


def job_output(job: Job, root: str | os.PathLike) -> Path:
    """Where a job writes: runs/<id>/ for training, evals/<id>.json for an evaluation."""
    root = Path(root)
    return root / "runs" / job["id"] if job["kind"] == "train" else root / "evals" / (
        job["id"] + ".json")


def is_done(job: Job, root: str | os.PathLike) -> bool:
    out = job_output(job, root)
    if job["kind"] == "train":
        from cvgr.train import RunDir, TrainConfig

        cfg = TrainConfig.from_dict(job["config"]).resolved()
        try:
            return RunDir(out).finished_metrics(cfg) is not None
        except Exception:  # unreadable leftovers: not done; training will say what is wrong
            return False
    if not out.is_file():
        return False
    try:
        return read_json(out).get("config") == job["config"]
    except (OSError, ValueError, AttributeError):
        return False


def execute(job: Job, root: str | os.PathLike, options: dict[str, Any]) -> dict[str, Any]:
    """Run one job to completion and write its output; return a short summary.

    `options`: device, data_root, progress (inner progress bars), quiet. Top-level and
    picklable, so a process pool (or a cluster engine) can call it.
    """
    t0 = time.perf_counter()
    out = job_output(job, root)
    if job["kind"] == "train":
        from cvgr.train import TrainConfig, train

        metrics = train(TrainConfig.from_dict(job["config"]), out, resume=True,
                        progress=bool(options.get("progress")), device=options.get("device"),
                        data_root=options.get("data_root"), quiet=bool(options.get("quiet")))
        summary = {k: metrics.get(k) for k in ("val_acc", "ce", "gr")}
    else:
        import torch

        from cvgr.experiments.evaluations import run_evaluation

        device = options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        result = run_evaluation(job["config"], root, device=device,
                                data_root=options.get("data_root"),
                                progress=bool(options.get("progress")))
        write_json(out, {"id": job["id"], "config": job["config"], "deps": job["deps"],
                         "seconds": round(time.perf_counter() - t0, 3), "result": result})
        summary = {}
    return {"id": job["id"], "seconds": time.perf_counter() - t0, "summary": summary}


class _Inline(Executor):
    """Runs each submitted call at once in this process (--jobs 1: plain tracebacks, no spawn)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - handed to the caller like a pool would
            f.set_exception(e)
        return f


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run_jobs(jobs: list[Job], root: str | os.PathLike, workers: int = 1, *,
             options: dict[str, Any] | None = None,
             execute_fn: Callable[[Job, Any, dict[str, Any]], dict[str, Any]] = execute,
             done_fn: Callable[[Job, Any], bool] = is_done,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every unfinished job of `jobs` (in dependency order) with `workers` processes.

    A failed job is recorded and its dependents are skipped; the others still run. Returns
    {"ran", "skipped", "failed": {id: message}, "blocked", "seconds"}; each outcome is also
    appended to ROOT/log.jsonl.
    """
    if workers < 1:
        from cvgr.errors import UserError

        raise UserError(f"--jobs must be >= 1, got {workers}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    options = dict(options or {})
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    finished = {j["id"] for j in jobs if done_fn(j, root)}
    todo = [j for j in jobs if j["id"] not in finished]
    skipped = [j["id"] for j in jobs if j["id"] in finished]
    total_cost = sum(float(j.get("cost", 1.0)) for j in todo) or 1.0
    say(f"{len(jobs)} jobs: {len(skipped)} already finished, {len(todo)} to run"
        + (f" in {workers} processes" if workers > 1 and todo else ""))
    failed: dict[str, str] = {}
    blocked: list[str] = []
    ran: list[str] = []
    if not todo:
        (root / "failures.json").unlink(missing_ok=True)
        return {"ran": ran, "skipped": skipped, "failed": failed, "blocked": blocked,
                "seconds": time.perf_counter() - t_start}

    def make_pool() -> Executor:
        if workers == 1:
            return _Inline()
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // workers)
        return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads,))

    pool = make_pool()
    done_cost = 0.0
    started = 0
    running: dict[Future, Job] = {}
    waiting = list(todo)
    try:
        while waiting or running:
            for job in list(waiting):
                if any(d in failed or d in blocked for d in job["deps"]):
                    waiting.remove(job)
                    blocked.append(job["id"])
                    say(f"  skip {job['id']}: a job it needs failed")
                    continue
                if len(running) >= workers or not all(d in finished for d in job["deps"]):
                    continue
                waiting.remove(job)
                started += 1
                say(f"[run {started}/{len(todo)}] {job['id']} ...")
                try:
                    fut = pool.submit(execute_fn, job, str(root), options)
                except BrokenExecutor:  # a worker died (killed, out of memory): start afresh
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = make_pool()
                    fut = pool.submit(execute_fn, job, str(root), options)
                running[fut] = job
            if not running:
                if waiting:  # deps that are neither planned nor done: nothing can start
                    for job in waiting:
                        blocked.append(job["id"])
                        say(f"  skip {job['id']}: its dependencies are not in the plan")
                    waiting.clear()
                break
            done_now, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done_now:
                job = running.pop(fut)
                done_cost += float(job.get("cost", 1.0))
                elapsed = time.perf_counter() - t_start
                try:
                    res = fut.result()
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # noqa: BLE001 - one failed job must not stop the rest
                    msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                    failed[job["id"]] = msg
                    append_jsonl(root / "log.jsonl", {
                        "id": job["id"], "status": "failed", "error": msg, "time": time.time(),
                        "traceback": "".join(traceback.format_exception(e))[-4000:]})
                    say(f"  FAILED {job['id']}: {msg}")
                    continue
                finished.add(job["id"])
                ran.append(job["id"])
                append_jsonl(root / "log.jsonl", {"id": job["id"], "status": "done",
                                                  "seconds": round(res["seconds"], 3),
                                                  "workers": workers,
                                                  "device": options.get("device"),
                                                  "time": time.time()})
                eta = elapsed / done_cost * max(0.0, total_cost - done_cost)
                say(f"  done {job['id']} in {format_seconds(res['seconds'])} "
                    f"({len(ran)}/{len(todo)} finished, elapsed {format_seconds(elapsed)}, "
                    f"ETA {format_seconds(eta)})")
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if failed:
        write_json(root / "failures.json", failed)
    elif (root / "failures.json").exists():
        (root / "failures.json").unlink()
    return {"ran": ran, "skipped": skipped, "failed": failed, "blocked": blocked,
            "seconds": time.perf_counter() - t_start}
