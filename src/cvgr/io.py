"""Atomic file writes (a reader never sees a half-written file, even after a crash), and the
checks that an output path can be written, made before any long work starts."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cvgr.errors import UserError

__all__ = ["atomic_write", "write_json", "read_json", "append_jsonl", "read_jsonl",
           "check_output_dir", "check_output_file", "check_target", "LOCK_FILE", "locked_dir",
           "open_in_dir", "shell_command", "to_json", "utc_now"]

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
    f = os.fdopen(open_in_dir(p / LOCK_FILE, os.O_RDWR, param), "r+")
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
                            "since": utc_now(),
                            "command": shell_command([Path(sys.argv[0]).name,
                                                      *sys.argv[1:]])[:300]})
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


def utc_now() -> str:
    """The time now in UTC, to the second, as records store it: 2026-01-31T12:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def shell_command(argv: Iterable[str]) -> str:
    """A command line as one string the shell runs as written (paths with spaces quoted)."""
    import shlex

    return shlex.join(str(a) for a in argv)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_target(path: str | os.PathLike, param: str | None = None) -> Path:
    """Refuse a file output that is not a regular file or a new name: a directory, a symlink
    (even a loop), a FIFO, a device. Renaming over it would replace it, and following a link
    would write outside the place given. Raises UserError naming `param`."""
    p = Path(path)
    try:
        mode = os.lstat(p).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new name (its folder checked apart)
        return p
    except OSError as e:
        raise UserError(f"{_named(param, p)}: cannot check it ({e.strerror}); give another path",
                        param=param) from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{_named(param, p)} is a directory; give a file name "
                        f"(e.g. {p / 'out.json'})", param=param)
    if not stat.S_ISREG(mode):
        raise UserError(f"{_named(param, p)} is {_kind(mode)}; cvgr writes only regular files: "
                        "give a new name or a regular file", param=param)
    return p


def _named(param: str | None, p: Path) -> str:
    return f"{param} {p}" if param else str(p)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output_file(path: str | os.PathLike, param: str = "out",
                      protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse, before any work, a file output that could not be written at the end.

    `path` must be a regular file or a new name (`check_target`), must not be one of the
    files in `protect` (the command's own inputs: an output never destroys its input), and
    its directory must exist and take a new file, or be creatable (its nearest existing
    ancestor is a directory that takes new entries). Probed by creating and removing a file,
    so read-only mounts, permissions and immutable directories all count. Nothing is left
    behind. Raises UserError naming `param`.
    """
    p = check_target(path, param)
    for q in protect:
        if _same_file(p, Path(q)):
            raise UserError(f"{param} {p} is {q}, an input of this command; writing it would "
                            "destroy it: give another file name", param=param)
    _check_parent(p, param)
    return p


def check_output_dir(path: str | os.PathLike, param: str = "out") -> Path:
    """Refuse, before any work, an output directory that could not be written: an existing file,
    a directory that takes no new files, or a path that cannot be created."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise UserError(f"{param} {p} is a symbolic link that leads nowhere (dangling, or a "
                        "loop); give a directory", param=param)
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
    path = check_target(path)
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
    """Write `obj` as JSON, atomically; NaN and inf become null (strict JSON, see `to_json`)."""
    text = to_json(obj) + "\n"

    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    return atomic_write(path, w)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """`obj` as strict JSON text: tensors, arrays and paths converted, and a NaN or inf
    (which JSON cannot hold; Python would write the invalid token NaN) written as null."""
    return json.dumps(_finite(json.loads(json.dumps(obj, default=_jsonable))), indent=indent,
                      allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line (a single write call, flushed and fsynced). A symlink or other
    non-regular file at `path` is refused (`open_in_dir`): nothing is written through it."""
    line = to_json(obj, indent=None) + "\n"
    with os.fdopen(open_in_dir(path, os.O_WRONLY | os.O_APPEND), "w") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def open_in_dir(path: str | os.PathLike, flags: int, param: str | None = None) -> int:
    """os.open(path, flags | O_CREAT) that never follows a symlink and refuses a FIFO or device:
    a file cvgr keeps in a directory it writes (lock, log) is written there or not at all."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o666)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENXIO):
            raise
        raise UserError(f"{path} is {_kind(os.lstat(path).st_mode)}; cvgr writes only regular "
                        "files and never through a link: remove it", param=param) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UserError(f"{path} is {_kind(mode)}; cvgr writes only regular files: remove it",
                        param=param)
    os.set_blocking(fd, True)
    return fd


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
