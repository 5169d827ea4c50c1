"""Atomic file writes (a reader never sees a half-written file, even after a crash), and the
checks that an output path can be written, made before any long work starts."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cvgr.errors import UserError

__all__ = ["atomic_write", "write_json", "read_json", "append_jsonl", "read_jsonl",
           "check_output_dir", "check_output_file", "LOCK_FILE", "locked_dir", "to_json"]

LOCK_FILE = ".cvgr.lock"
"""Held (a POSIX record lock) by the process writing into a run or reproduction directory."""


@contextmanager
def locked_dir(path: str | os.PathLike, param: str = "out") -> Iterator[Path]:
    """Create directory `path` if needed and hold its lock for the block; refuse if held.

    The lock is an fcntl record lock on PATH/.cvgr.lock: the kernel drops it when the holder
    exits or is killed, so it never outlives its process (no stale pid file to clean up), and
    it is not inherited by forked children. The file holds who has the lock (pid, host, since,
    command), so the refusal says who to wait for. The file is left in place (removing it
    would race with a process about to lock it); directory checks ignore it.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    f = open(p / LOCK_FILE, "a+")  # noqa: SIM115 -- closed below; closing releases the lock
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        if e.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise UserError(f"{param} {p} is in use by another cvgr process ({_holder(holder)}); "
                        f"wait for it to finish, or give another {param}", param=param) from None
    try:
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]})
                + "\n")
        f.flush()
        yield p
    finally:
        f.close()


def _holder(text: str) -> str:
    try:
        h = json.loads(text)
        return (f"pid {h['pid']} on {h['host']} since {h['since']}"
                + (f": {h['command']}" if h.get("command") else ""))
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def check_output_file(path: str | os.PathLike, param: str = "out") -> Path:
    """Refuse, before any work, a file output that could not be written at the end.

    `path` must not be a directory, and its directory must exist and take a new file, or be
    creatable (its nearest existing ancestor is a directory that takes new entries). Probed by
    creating and removing a file, so read-only mounts, permissions and immutable directories
    all count. Nothing is left behind. Raises UserError naming `param`.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{param} {p} is a directory; give a file name (e.g. {p / 'out.json'})",
                        param=param)
    _check_parent(p, param)
    return p


def check_output_dir(path: str | os.PathLike, param: str = "out") -> Path:
    """Refuse, before any work, an output directory that could not be written: an existing file,
    a directory that takes no new files, or a path that cannot be created."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{param} {p} is a file, not a directory; give a directory", param=param)
    if p.is_dir():
        _probe(p, p, param)
    else:
        _check_parent(p, param)
    return p


def _check_parent(p: Path, param: str) -> None:
    anc = p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{param} {p}: {anc} is a file, not a directory; give another path",
                        param=param)
    _probe(anc, p, param)


def _probe(directory: Path, target: Path, param: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".cvgr-probe.", dir=directory)
    except OSError as e:
        raise UserError(f"{param} {target}: cannot write in {directory} ({e.strerror}); give a "
                        "writable location", param=param) from None
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object]) -> Path:
    """Call writer(tmp) on a temporary file beside `path`, fsync it, rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        # mkstemp makes 0600, and some writers (safetensors' save_file) replace the file we
        # made, so the ordinary permissions are set after writing, on whatever is there now.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_jsonable)
            f.write("\n")

    return atomic_write(path, w)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """`obj` as JSON text, with tensors, arrays and paths converted as `write_json` does."""
    return json.dumps(obj, indent=indent, default=_jsonable)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line (a single write call, flushed and fsynced)."""
    line = json.dumps(obj, default=_jsonable) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read JSON lines, ignoring a torn last line left by a crash mid-append."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
