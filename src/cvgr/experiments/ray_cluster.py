"""Ray options and the checks made before any job runs: is the head reachable, does Ray
start, do the cluster's resources fit the options, and does every node see OUT (the shared
filesystem test). Ray itself is imported only when the Ray executor runs (`import_ray`).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvgr.errors import UserError
from cvgr.io import read_json, write_json
from cvgr.options import RunOptions

__all__ = ["CONNECT_TIMEOUT", "SHARED_FS_CHOICES", "TOKEN_FILE", "RayOptions",
           "check_reachable", "connect", "decide_shared", "import_ray", "job_options",
           "sees_token", "slot_count"]

TOKEN_FILE = ".cvgr-ray-token.json"
"""The file in OUT holding the shared-filesystem test's token (removed after the run)."""
SHARED_FS_CHOICES = ("auto", "yes", "no")
"""The values of `RayOptions.shared_fs`."""


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
    """The `ray` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs Ray: pip install 'cvgr[cluster]' "
                        "(or pip install ray)") from None
    return ray


def connect(ray: Any, cluster: RayOptions) -> bool:
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


def job_options(ray: Any, cluster: RayOptions, options: RunOptions) -> RunOptions:
    """The device and thread count each task uses, checked against the cluster's resources."""
    import torch

    device = options.device
    if device is None:
        device = "cuda" if cluster.gpus_per_job > 0 else "cpu"
    try:
        dev_type = torch.device(device).type
    except (RuntimeError, TypeError):
        raise UserError(f"device {device!r} is not a device name; use cpu or cuda",
                        param="device") from None
    if dev_type == "cuda" and ":" in device:
        raise UserError(f"device {device!r}: with Ray give device cuda; Ray assigns each job "
                        "its GPU", param="device")
    if dev_type == "cuda" and cluster.gpus_per_job <= 0:
        raise UserError("device cuda on Ray needs gpus_per_job > 0 (for example 0.25: four "
                        "jobs share a GPU)", param="gpus_per_job")
    if dev_type != "cuda" and cluster.gpus_per_job > 0:
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


def slot_count(ray: Any, cluster: RayOptions) -> int:
    """How many jobs the cluster runs at once with the resources each job reserves."""
    res = ray.cluster_resources()
    n = res.get("CPU", 1) / cluster.cpus_per_job
    if cluster.gpus_per_job > 0:
        n = min(n, res.get("GPU", 0) / cluster.gpus_per_job)
    return max(1, int(n))


def decide_shared(ray: Any, out_dir: Path, mode: str) -> str | None:
    """The token every node reads in OUT if OUT is shared (kept there during the run, so
    each task can check it sees it), else None (ship the files)."""
    if mode == "no":
        return None
    token = secrets.token_hex(16)
    write_json(out_dir / TOKEN_FILE, {"token": token})
    probe = ray.remote(num_cpus=0)(sees_token)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(str(out_dir), token) for n in nodes]
    seen = dict(zip([n.get("NodeManagerAddress", n["NodeID"]) for n in nodes],
                    ray.get(refs), strict=True))
    blind = sorted(a for a, ok in seen.items() if not ok)
    if mode == "yes" and blind:
        raise UserError(f"shared_fs yes, but node(s) {', '.join(blind)} do not see {out_dir} "
                        "at the same path; mount it there, or use shared_fs no")
    if blind:
        (out_dir / TOKEN_FILE).unlink(missing_ok=True)
        return None
    return token


def sees_token(out_dir: str, token: str) -> bool:
    """Whether OUT (ROOT) here holds the token the driver wrote: this node sees the shared OUT."""
    try:
        return read_json(Path(out_dir) / TOKEN_FILE).get("token") == token
    except (OSError, ValueError, AttributeError):
        return False

