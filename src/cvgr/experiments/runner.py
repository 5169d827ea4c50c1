"""Run a list of plain-JSON jobs: skip finished ones, respect dependencies, N local processes.

A job is finished when its output exists and matches its config (a train job: the run
directory holds that run, finished; an evaluate job: ``evals/<id>.json`` stores that config).
Outputs are written atomically, so an interrupted call loses only the jobs in flight, and
a train job in flight resumes from its last finished epoch. The functions `execute` and
`is_done` are the whole contract with an executor: any engine that can call
``execute(job, out_dir, options)`` on a machine seeing ROOT can run the plan
(`cvgr.experiments.ray_executor` runs it on a Ray cluster, with or without a shared ROOT).
"""

from __future__ import annotations

import os
import sys
import threading
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

from cvgr.errors import UserError
from cvgr.experiments.jobs import Job
from cvgr.io import append_jsonl, read_json, write_json
from cvgr.options import RunOptions

__all__ = ["Progress", "RunOptions", "execute", "format_seconds", "is_done",
           "job_output", "run_jobs"]

ExecuteFn = Callable[[Job, Any, RunOptions], dict[str, Any]]


def job_output(job: Job, out_dir: str | os.PathLike) -> Path:
    """Where a job writes: runs/<id>/ for training, evals/<id>.json for an evaluation."""
    out_dir = Path(out_dir)
    return out_dir / "runs" / job["id"] if job["task"] == "train" else out_dir / "evals" / (
        job["id"] + ".json")


def is_done(job: Job, out_dir: str | os.PathLike) -> bool:
    out = job_output(job, out_dir)
    if job["task"] == "train":
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


def execute(job: Job, out_dir: str | os.PathLike, options: RunOptions | None = None
            ) -> dict[str, Any]:
    """Run one job to completion and write its output under ROOT; return a short summary.

    Top-level, and `options` is a frozen dataclass, so a process pool or a Ray task can call
    it. The device is resolved here, on the machine that runs the job.
    """
    import torch

    from cvgr.devices import describe_hardware, deterministic, resolve_device

    options = options or RunOptions()
    t0 = time.perf_counter()
    out = job_output(job, out_dir)
    dev = resolve_device(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    with deterministic(options.deterministic):
        if job["task"] == "train":
            summary = _train_job(job, out, dev, options)
        else:
            result = _zoo_evaluation(job, out_dir) if options.use_zoo else None
            if result is None:
                from cvgr.experiments.evaluations import run_evaluation

                result = run_evaluation(job["config"], out_dir, options.replace(device=str(dev)))
            write_json(out, {"id": job["id"], "config": job["config"], "deps": job["deps"],
                             "seconds": round(time.perf_counter() - t0, 3), "result": result})
            summary = {"zoo": result["source"]} if "source" in result else {}
    return {"id": job["id"], "seconds": time.perf_counter() - t0, "summary": summary,
            "device": str(dev), "hardware": describe_hardware(dev, labelled=True),
            "executor": options.executor, "threads": torch.get_num_threads()}


def _train_job(job: Job, out: Path, dev: Any, options: RunOptions) -> dict[str, Any]:
    """Train a job's run, or take the shipped zoo model trained with exactly its config."""
    from cvgr.train import TrainConfig, train

    cfg = TrainConfig.from_dict(dict(job["config"]))
    if options.use_zoo:
        from cvgr.zoo.adopt import adopt_run

        taken = adopt_run(cfg, out)
        if taken is not None:
            return {"zoo": taken}
    metrics = train(cfg, out, resume=True, options=options.replace(device=str(dev)))
    return {k: metrics.get(k) for k in ("val_acc", "ce", "gr")}


def adopt_zoo_models(jobs: list[Job], out_dir: str | os.PathLike) -> list[str]:
    """Take now the shipped zoo model of every train job in `jobs` whose configuration is a
    zoo entry's and whose run directory is still empty (:func:`cvgr.zoo.adopt.adopt_run`).
    `cvgr reproduce --only` calls it for the whole plan, so that its report shows every zoo
    model, not only those of the selected jobs. Returns the ids taken."""
    from cvgr.train import TrainConfig
    from cvgr.zoo.adopt import adopt_run

    return [j["id"] for j in jobs if j["task"] == "train" and adopt_run(
        TrainConfig.from_dict(dict(j["config"])), job_output(j, out_dir)) is not None]


def _zoo_evaluation(job: Job, out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The zoo's stored AutoAttack result where the job asks exactly for it, else None."""
    cfg: dict[str, Any] = dict(job["config"])
    if cfg.get("what") != "autoattack":
        return None
    from cvgr.zoo.adopt import adopt_autoattack

    return adopt_autoattack(cfg, Path(out_dir) / "runs" / cfg["model"])


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def error_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


class Progress:
    """The bookkeeping every executor shares: which jobs ran, failed or were skipped, the
    progress lines with the time estimate, ROOT/log.jsonl and ROOT/failures.json."""

    def __init__(self, jobs: list[Job], out_dir: Path, done_fn: Callable[[Job, Any], bool],
                 say: Callable[[str], None], where: str, workers: int) -> None:
        self.out_dir, self.say, self.workers = out_dir, say, workers
        self.t_start = time.perf_counter()
        self.finished = {j["id"] for j in jobs if done_fn(j, out_dir)}
        self.todo = [j for j in jobs if j["id"] not in self.finished]
        self.skipped = [j["id"] for j in jobs if j["id"] in self.finished]
        self.total_cost = sum(float(j.get("cost", 1.0)) for j in self.todo) or 1.0
        self.done_cost = 0.0
        self.started = 0
        self.failed: dict[str, str] = {}
        self.blocked: list[str] = []
        self.ran: list[str] = []
        say(f"{len(jobs)} jobs: {len(self.skipped)} already finished, {len(self.todo)} to run"
            + (f" {where}" if where and self.todo else ""))

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def dead(self, job_id: str) -> bool:
        """True if the job failed or was skipped (its dependents cannot run)."""
        return job_id in self.failed or job_id in self.blocked

    def start(self, job: Job) -> None:
        self.started += 1
        self.say(f"[run {self.started}/{len(self.todo)}] {job['id']} ...")

    def block(self, job: Job, why: str = "a job it needs failed") -> None:
        self.blocked.append(job["id"])
        self.say(f"  skip {job['id']}: {why}")

    def fail(self, job: Job, e: BaseException, tb: str | None = None) -> None:
        self.done_cost += float(job.get("cost", 1.0))
        msg = error_line(e)
        self.failed[job["id"]] = msg
        append_jsonl(self.out_dir / "log.jsonl", {
            "id": job["id"], "status": "failed", "error": msg, "time": time.time(),
            "traceback": (tb or "".join(traceback.format_exception(e)))[-4000:]})
        self.say(f"  FAILED {job['id']}: {msg}")

    def done(self, job: Job, res: dict[str, Any], **extra: Any) -> None:
        self.done_cost += float(job.get("cost", 1.0))
        self.finished.add(job["id"])
        self.ran.append(job["id"])
        append_jsonl(self.out_dir / "log.jsonl", {"id": job["id"], "status": "done",
                                               "seconds": round(res["seconds"], 3),
                                               "workers": self.workers,
                                               "executor": res.get("executor"),
                                               "threads": res.get("threads"),
                                               "device": res.get("device"),
                                               "hardware": res.get("hardware"), **extra,
                                               "time": time.time()})
        elapsed = self.elapsed()
        eta = elapsed / self.done_cost * max(0.0, self.total_cost - self.done_cost)
        self.say(f"  done {job['id']} in {format_seconds(res['seconds'])} "
                 f"({len(self.ran)}/{len(self.todo)} finished, elapsed "
                 f"{format_seconds(elapsed)}, ETA {format_seconds(eta)})")

    def outcome(self) -> dict[str, Any]:
        """Write (or remove) failures.json; the summary `run_jobs` returns."""
        if self.failed:
            write_json(self.out_dir / "failures.json", self.failed)
        else:
            (self.out_dir / "failures.json").unlink(missing_ok=True)
        return {"ran": self.ran, "skipped": self.skipped, "failed": self.failed,
                "blocked": self.blocked, "seconds": self.elapsed()}


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


PARENT_CHECK_SECONDS = 0.5


def _init_worker(threads: int, parent: int) -> None:
    """Set up a pool worker: its thread count, and a watchdog that ends it when the parent
    process is gone (killed, even with SIGKILL), so no orphan goes on computing for nobody.
    Finished epochs are on disk already; the job resumes when the command is run again."""
    import torch

    torch.set_num_threads(threads)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="cvgr-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:  # reparented: the process that started us has died
            os._exit(1)


def run_jobs(jobs: list[Job], out_dir: str | os.PathLike, workers: int = 1, *,
             options: RunOptions | None = None,
             execute_fn: ExecuteFn = execute,
             done_fn: Callable[[Job, Any], bool] = is_done,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every unfinished job of `jobs` (in dependency order) with `workers` processes.

    A failed job is recorded and its dependents are skipped; the others still run. Returns
    {"ran", "skipped", "failed": {id: message}, "blocked", "seconds"}; each outcome is also
    appended to ROOT/log.jsonl.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be a whole number >= 1, got {workers!r}",
                        param="workers")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = (options or RunOptions()).replace(executor="local", jobs=workers)
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    prog = Progress(jobs, out_dir, done_fn, say,
                    f"in {workers} processes" if workers > 1 else "", workers)
    if prog.todo:
        _run_local(prog, workers, options, execute_fn)
    return prog.outcome()


def _make_pool(workers: int) -> Executor:
    if workers == 1:
        return _Inline()
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads, os.getpid()))


class _Pool:
    """The worker processes; started afresh when a worker dies (killed, out of memory)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = _make_pool(workers)

    def submit(self, fn: ExecuteFn, *args: Any) -> Future:
        try:
            return self.pool.submit(fn, *args)
        except BrokenExecutor:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = _make_pool(self.workers)
            return self.pool.submit(fn, *args)


def _start_ready(prog: Progress, waiting: list[Job], running: dict[Future, Job], pool: _Pool,
                 start: Callable[[Job], Future]) -> None:
    """Block the jobs whose dependencies failed; start those whose dependencies are done, as
    long as a worker is free."""
    for job in list(waiting):
        if any(prog.dead(d) for d in job["deps"]):
            waiting.remove(job)
            prog.block(job)
            continue
        if len(running) >= pool.workers or not all(d in prog.finished for d in job["deps"]):
            continue
        waiting.remove(job)
        prog.start(job)
        running[start(job)] = job


def _collect(prog: Progress, running: dict[Future, Job]) -> None:
    """Wait for at least one job to end and record how each that ended did."""
    done_now, _ = wait(list(running), return_when=FIRST_COMPLETED)
    for fut in done_now:
        job = running.pop(fut)
        try:
            res = fut.result()
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - one failed job must not stop the rest
            prog.fail(job, e)
            continue
        prog.done(job, res)


def _run_local(prog: Progress, workers: int, options: RunOptions,
               execute_fn: ExecuteFn) -> None:
    out_dir = str(prog.out_dir)
    pool = _Pool(workers)
    running: dict[Future, Job] = {}
    waiting = list(prog.todo)

    def start(job: Job) -> Future:
        return pool.submit(execute_fn, job, out_dir, options)

    try:
        while waiting or running:
            _start_ready(prog, waiting, running, pool, start)
            if not running:
                for job in waiting:  # deps that are neither planned nor done: nothing can start
                    prog.block(job, "its dependencies are not in the plan")
                break
            _collect(prog, running)
    except BaseException:
        pool.pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.pool.shutdown(wait=True)
