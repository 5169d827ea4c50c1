"""What runs on a Ray worker (`run_task`: one job, in OUT itself or in a scratch copy), and a
job's output files as data, for the shipped mode: packed on the node that wrote them,
unpacked on the node that needs them, and written under OUT by the driver."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from cvgr.errors import UserError
from cvgr.experiments.ray_cluster import sees_token
from cvgr.experiments.runner import ExecuteFn, Job, job_output
from cvgr.io import atomic_write, locked_dir
from cvgr.options import RunOptions

__all__ = ["pack", "run_task", "write_files"]


def run_task(job: Job, out_dir: str, options: RunOptions, token: str | None,
             execute_fn: ExecuteFn, own: dict[str, bytes] | None,
             *deps: dict[str, Any] | None) -> dict[str, Any]:
    """One job on a worker: in OUT itself if `token` (OUT is shared), else in a scratch
    copy whose output files are returned."""
    if token is not None:
        if not sees_token(out_dir, token):
            raise UserError(f"this node ({socket.gethostname()}) does not see {out_dir} "
                            "(a node that joined without the shared filesystem?); "
                            "use shared_fs no")
        res = execute_fn(job, out_dir, options)
        return {**res, "node": socket.gethostname()}
    scratch = _scratch(out_dir, job)
    work = scratch / "out_dir"
    for dep in deps:
        if dep is not None:
            _unpack(work, dep["files"] if "files" in dep else dep)
    mine = job_output(job, work)
    if own and not mine.exists():  # a retry on this node keeps its own, newer epochs
        _unpack(work, own)
    res = execute_fn(job, str(work), options)
    res["files"] = pack(work, job)
    res["node"] = socket.gethostname()
    shutil.rmtree(scratch, ignore_errors=True)
    return res


def _scratch(out_dir: str, job: Job) -> Path:
    """This node's scratch directory for the job (the same one when it is retried here)."""
    key = hashlib.sha256(json.dumps([out_dir, job["id"], job["config"]],
                                    sort_keys=True).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "cvgr-ray" / f"{job['id']}-{key}"


# -- files as data -------------------------------------------------------------------------------


def pack(out_dir: Path, job: Job) -> dict[str, bytes]:
    """A job's output files under ROOT as {path relative to ROOT: bytes} (temporaries
    excluded); empty if there is none."""
    out = job_output(job, out_dir)
    files = [p for p in sorted(out.iterdir()) if p.is_file()] if out.is_dir() else (
        [out] if out.is_file() else [])
    return {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in files
            if not p.name.startswith(".")}


def _unpack(out_dir: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        _atomic_bytes(out_dir / rel, data)


def write_files(out_dir: Path, job: Job, files: dict[str, bytes]) -> None:
    """Write a shipped job's files under ROOT, each atomically; a run's directory is locked
    meanwhile (as `train` locks it), and its weights file (what `is_done` checks) comes
    last, so a crash in between leaves a resumable run."""
    out = job_output(job, out_dir)
    allowed = out.relative_to(out_dir).as_posix()
    for rel in files:
        parts = Path(rel).parts
        if rel != allowed and not (rel.startswith(allowed + "/") and len(parts) == 3
                                   and ".." not in parts):
            raise UserError(f"job {job['id']} returned a file outside its output: {rel!r}")
    last = f"{allowed}/model.safetensors"
    if job["task"] != "train":
        for rel in files:
            _atomic_bytes(out_dir / rel, files[rel])
        return
    with locked_dir(out, "out"):  # as `train` holds it locally: no other writer meanwhile
        for rel in sorted(files, key=lambda r: r == last):
            _atomic_bytes(out_dir / rel, files[rel])


def _atomic_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
