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
Ray is imported only here and only when this executor is used (``pip install 'cvgr[cluster]'``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvgr.errors import UserError
from cvgr.experiments.runner import ExecuteFn, Job, Progress, execute, is_done, job_output
from cvgr.io import atomic_write, locked_dir, read_json, write_json
from cvgr.options import RunOptions

__all__ = ["CONNECT_TIMEOUT", "RayOptions", "check_reachable", "run_jobs_ray"]

TOKEN_FILE = ".cvgr-ray-token.json"
SHARED_FS_CHOICES = ("auto", "yes", "no")


@dataclass(frozen=True)
class RayOptions:
    """Where and how the jobs run on Ray.

    address: None starts a local Ray instance for this call (shut down at the end); "auto"
        joins the cluster this machine belongs to; "HOST:PORT" a given head node. A Ray
        already initialised in this process (``ray.init`` by the caller) is used as it is.
    cpus_per_job / gpus_per_job: the resources Ray reserves for each job (a fraction of a
        GPU lets several small jobs share one).
    shared_fs: "auto" (test whether every node sees OUT), "yes" (require it), "no" (ship
        the files).
    max_retries: how often a job whose worker died is started again.
    num_cpus: CPUs of a local instance (None: all of this machine's).
    """

    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    shared_fs: str = "auto"
    max_retries: int = 3
    num_cpus: int | None = None

    def check(self) -> None:
        """UserError naming the parameter for a value that cannot work."""
        for name in ("cpus_per_job", "gpus_per_job"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v < 0:
                raise UserError(f"{name} must be a finite number >= 0, got {v!r}", param=name)
        if self.cpus_per_job <= 0:
            raise UserError(f"cpus_per_job must be > 0, got {self.cpus_per_job!r}",
                            param="cpus_per_job")
        if self.gpus_per_job > 1 and self.gpus_per_job != int(self.gpus_per_job):
            raise UserError("gpus_per_job above 1 must be a whole number, got "
                            f"{self.gpus_per_job!r}", param="gpus_per_job")
        if self.shared_fs not in SHARED_FS_CHOICES:
            raise UserError(f"shared_fs must be one of {', '.join(SHARED_FS_CHOICES)}, "
                            f"got {self.shared_fs!r}", param="shared_fs")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) \
                or self.max_retries < 0:
            raise UserError(f"max_retries must be a whole number >= 0, got "
                            f"{self.max_retries!r}", param="max_retries")
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int)
                                          or self.num_cpus < 1):
            raise UserError(f"num_cpus must be a whole number >= 1, got {self.num_cpus!r}",
                            param="num_cpus")


CONNECT_TIMEOUT = 5.0
"""Seconds to reach a given Ray head (HOST:PORT) before giving up: Ray itself waits minutes."""


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse in seconds a HOST:PORT (or ray://HOST:PORT) where nothing accepts a connection;
    None (a local instance) and "auto" (found by Ray) are not probed."""
    if address is None or address == "auto":
        return
    where = address.split("://", 1)[-1]
    host, sep, port = where.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"address {address!r} is not auto or HOST:PORT (e.g. 10.0.0.5:6379)",
                        param="address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = e.strerror or ("timed out" if isinstance(e, TimeoutError) else type(e).__name__)
        raise UserError(f"address {address}: no Ray head answers there ({why}, within "
                        f"{timeout:g} s); start it with `ray start --head` or give the right "
                        "HOST:PORT", param="address") from None


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs Ray: pip install 'cvgr[cluster]' "
                        "(or pip install ray)") from None
    return ray


def run_jobs_ray(jobs: list[Job], root: str | os.PathLike, cluster: RayOptions | None = None,
                 *, options: RunOptions | None = None, execute_fn: ExecuteFn = execute,
                 done_fn: Callable[[Job, Any], bool] = is_done,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`run_jobs` on Ray: same outcome dict, same progress lines, log.jsonl and failures.json."""
    cluster = cluster or RayOptions()
    cluster.check()
    options = options or RunOptions()
    check_reachable(cluster.address)
    ray = import_ray()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started_here = _connect(ray, cluster)
    try:
        slots = _slots(ray, cluster)
        options = _job_options(ray, cluster, options).replace(executor="ray", jobs=slots)
        prog = Progress(jobs, root, done_fn, say, f"as Ray tasks ({slots} at a time)", slots)
        if prog.todo:
            token = _decide_shared(ray, root, cluster.shared_fs)
            say(f"  Ray: {'shared' if token else 'no shared'} filesystem for {root}")
            try:
                _Driver(ray, prog, cluster, options, execute_fn, jobs, token).run()
            finally:
                (root / TOKEN_FILE).unlink(missing_ok=True)
        return prog.outcome()
    finally:
        if started_here:
            ray.shutdown()


# -- connecting and checking resources ---------------------------------------------------------


def _connect(ray: Any, cluster: RayOptions) -> bool:
    """Initialise Ray unless the caller already did; True if this call started it."""
    # Ray's tqdm support would replace builtins.print in this process for good
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "configure_logging": False}
    if cluster.address is None:
        kw["num_cpus"] = cluster.num_cpus
    elif cluster.num_cpus is not None:
        raise UserError("num_cpus applies to a local Ray instance only; a cluster's CPUs are "
                        "set by `ray start --num-cpus`")
    try:
        ray.init(address=cluster.address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = cluster.address or "a local instance"
        raise UserError(f"cannot start Ray ({where}): {str(e).splitlines()[0][:200]}") from None
    return True


def _job_options(ray: Any, cluster: RayOptions, options: RunOptions) -> RunOptions:
    """The device and thread count each task uses, checked against the cluster's resources."""
    import torch

    device = options.device
    if device is None:
        device = "cuda" if cluster.gpus_per_job > 0 else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise UserError(f"device {device!r} is not a device name; use cpu or cuda",
                        param="device") from None
    if kind == "cuda" and ":" in device:
        raise UserError(f"device {device!r}: with Ray give device cuda; Ray assigns each job "
                        "its GPU", param="device")
    if kind == "cuda" and cluster.gpus_per_job <= 0:
        raise UserError("device cuda on Ray needs gpus_per_job > 0 (for example 0.25: four "
                        "jobs share a GPU)", param="gpus_per_job")
    if kind != "cuda" and cluster.gpus_per_job > 0:
        raise UserError(f"gpus_per_job {cluster.gpus_per_job:g} with device {device!r}: "
                        "give device cuda, or leave gpus_per_job at 0")
    res = ray.cluster_resources()
    if cluster.gpus_per_job > 0 and res.get("GPU", 0) <= 0:
        raise UserError("gpus_per_job > 0, but the Ray cluster has no GPU",
                        param="gpus_per_job")
    node_cpus = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    if cluster.cpus_per_job > max(node_cpus, default=0):
        raise UserError(f"cpus_per_job {cluster.cpus_per_job:g} is more than any Ray node has "
                        f"({max(node_cpus, default=0):g})")
    return options.replace(device=device, threads=max(1, int(cluster.cpus_per_job)),
                           quiet=True, progress=False)


def _slots(ray: Any, cluster: RayOptions) -> int:
    res = ray.cluster_resources()
    n = res.get("CPU", 1) / cluster.cpus_per_job
    if cluster.gpus_per_job > 0:
        n = min(n, res.get("GPU", 0) / cluster.gpus_per_job)
    return max(1, int(n))


def _decide_shared(ray: Any, root: Path, mode: str) -> str | None:
    """The token every node reads in OUT if OUT is shared (kept there during the run, so
    each task can check it sees it), else None (ship the files)."""
    if mode == "no":
        return None
    token = secrets.token_hex(16)
    write_json(root / TOKEN_FILE, {"token": token})
    probe = ray.remote(num_cpus=0)(_sees_token)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(str(root), token) for n in nodes]
    seen = dict(zip([n.get("NodeManagerAddress", n["NodeID"]) for n in nodes],
                    ray.get(refs), strict=True))
    blind = sorted(a for a, ok in seen.items() if not ok)
    if mode == "yes" and blind:
        raise UserError(f"shared_fs yes, but node(s) {', '.join(blind)} do not see {root} "
                        "at the same path; mount it there, or use shared_fs no")
    if blind:
        (root / TOKEN_FILE).unlink(missing_ok=True)
        return None
    return token


def _sees_token(root: str, token: str) -> bool:
    try:
        return read_json(Path(root) / TOKEN_FILE).get("token") == token
    except (OSError, ValueError, AttributeError):
        return False


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
        self.task = ray.remote(_run_task).options(
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
                    _pack(self.prog.root, self.by_id[d])))
            else:
                self.prog.block(job, "its dependencies are not in the plan")
                return
        own = None
        if not self.shared and job["kind"] == "train":
            files = _pack(self.prog.root, job)
            own = self.ray.put(files) if files else None
        root = str(self.prog.root)
        ref = self.task.remote(job, root, self.options, self.token, self.execute_fn, own,
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
                _write_files(self.prog.root, job, res.pop("files"))
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


# -- the task (runs in a Ray worker) -------------------------------------------------------------


def _run_task(job: Job, root: str, options: RunOptions, token: str | None,
              execute_fn: ExecuteFn, own: dict[str, bytes] | None,
              *deps: dict[str, Any] | None) -> dict[str, Any]:
    """One job on a worker: in OUT itself if `token` (OUT is shared), else in a scratch
    copy whose output files are returned."""
    import socket

    if token is not None:
        if not _sees_token(root, token):
            raise UserError(f"this node ({socket.gethostname()}) does not see {root} "
                            "(a node that joined without the shared filesystem?); "
                            "use shared_fs no")
        res = execute_fn(job, root, options)
        return {**res, "node": socket.gethostname()}
    scratch = _scratch(root, job)
    work = scratch / "root"
    for dep in deps:
        if dep is not None:
            _unpack(work, dep["files"] if "files" in dep else dep)
    mine = job_output(job, work)
    if own and not mine.exists():  # a retry on this node keeps its own, newer epochs
        _unpack(work, own)
    res = execute_fn(job, str(work), options)
    res["files"] = _pack(work, job)
    res["node"] = socket.gethostname()
    shutil.rmtree(scratch, ignore_errors=True)
    return res


def _scratch(root: str, job: Job) -> Path:
    key = hashlib.sha256(json.dumps([root, job["id"], job["config"]],
                                    sort_keys=True).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "cvgr-ray" / f"{job['id']}-{key}"


# -- files as data -------------------------------------------------------------------------------


def _pack(root: Path, job: Job) -> dict[str, bytes]:
    """A job's output files under ROOT as {path relative to ROOT: bytes} (temporaries
    excluded); empty if there is none."""
    out = job_output(job, root)
    files = [p for p in sorted(out.iterdir()) if p.is_file()] if out.is_dir() else (
        [out] if out.is_file() else [])
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files
            if not p.name.startswith(".")}


def _unpack(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        _atomic_bytes(root / rel, data)


def _write_files(root: Path, job: Job, files: dict[str, bytes]) -> None:
    """Write a shipped job's files under ROOT, each atomically; a run's directory is locked
    meanwhile (as `train` locks it), and its weights file (what `is_done` checks) comes
    last, so a crash in between leaves a resumable run."""
    out = job_output(job, root)
    allowed = out.relative_to(root).as_posix()
    for rel in files:
        parts = Path(rel).parts
        if rel != allowed and not (rel.startswith(allowed + "/") and len(parts) == 3
                                   and ".." not in parts):
            raise UserError(f"job {job['id']} returned a file outside its output: {rel!r}")
    last = f"{allowed}/model.safetensors"
    if job["kind"] != "train":
        for rel in files:
            _atomic_bytes(root / rel, files[rel])
        return
    with locked_dir(out, "out"):  # as `train` holds it locally: no other writer meanwhile
        for rel in sorted(files, key=lambda r: r == last):
            _atomic_bytes(root / rel, files[rel])


def _atomic_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
