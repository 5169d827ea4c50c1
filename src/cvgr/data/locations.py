"""Where dataset files live: the places searched for a dataset, and the first complete one.

Search order for a dataset NAME, first complete set of files wins:
  1. the `data_root` argument (``--data-root``): ROOT/NAME, then ROOT itself;
  2. ``$CVGR_DATA/NAME``;
  3. the user cache ``${XDG_CACHE_HOME:-~/.cache}/cvgr/NAME``;
  4. system locations ``/usr/share/datasets/NAME`` (Debian's ``dataset-fashion-mnist``) and
     ``/usr/local/share/datasets/NAME``.
CIFAR-10 is also found in a ``cifar-10-batches-py`` folder inside any of these.

`cvgr.data.sources.fetch` writes to :func:`destination`: ROOT/NAME, else ``$CVGR_DATA/NAME``,
else the user cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from cvgr.data.specs import get_spec
from cvgr.errors import UserError

__all__ = ["SYSTEM_DIRS", "cache_root", "destination", "find", "locate", "required_files",
           "search_dirs", "split_files"]

SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))
_SPLITS = ("train", "test")


def cache_root() -> Path:
    """The user cache for cvgr: $XDG_CACHE_HOME/cvgr, or ~/.cache/cvgr."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cvgr"


def destination(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """Where `fetch` writes NAME: ROOT/NAME, $CVGR_DATA/NAME, or the user cache."""
    get_spec(name)
    base = data_root or os.environ.get("CVGR_DATA") or cache_root()
    return Path(base) / name


def search_dirs(name: str, data_root: str | os.PathLike | None = None) -> list[Path]:
    """Candidate directories for NAME's files, in search order (they need not exist).

    A `data_root` the user names is the only place looked in (ROOT/NAME, then ROOT): a typo must
    not silently fall back to another copy of the data.
    """
    get_spec(name)
    bases: list[Path] = []
    if data_root:
        bases += [Path(data_root) / name, Path(data_root)]
    else:
        if os.environ.get("CVGR_DATA"):
            bases.append(Path(os.environ["CVGR_DATA"]) / name)
        bases.append(cache_root() / name)
        bases += [d / name for d in SYSTEM_DIRS]
    subdir = get_spec(name).reader.subdir
    out: list[Path] = []
    for b in bases:
        cands = [b / subdir, b] if subdir else [b]
        out += [c for c in cands if c not in out]
    return out


def required_files(name: str) -> list[str]:
    """File names that must all be present (an IDX file may also carry a .gz suffix)."""
    reader = get_spec(name).reader
    return [f for split in _SPLITS for f in reader.files(split)]


def _present(directory: Path, fname: str) -> Path | None:
    for cand in (fname + ".gz", fname) if not fname.endswith(".mat") else (fname,):
        p = directory / cand
        if p.is_file():
            return p
        if p.exists():
            raise UserError(f"{p} is a directory (or another non-file) where a data file "
                            "belongs; remove it or put the file there", param="data_root")
    return None


def _missing(name: str, directory: Path) -> list[str]:
    return [f for f in required_files(name) if _present(directory, f) is None]


def find(name: str, data_root: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(directory, "") when found, else (None, one-line reason naming where we looked)."""
    if data_root and not Path(data_root).is_dir():
        what = "is not a directory" if Path(data_root).exists() else "does not exist"
        return None, (f"not found: the data data_root {data_root} {what}; check the path, or run "
                      f"`cvgr data fetch {name} --data-root {data_root}`")
    partial = []
    dirs = search_dirs(name, data_root)
    for d in dirs:
        if not d.is_dir():
            continue
        missing = _missing(name, d)
        if not missing:
            return d, ""
        if len(missing) < len(required_files(name)):
            partial.append(f"{d} lacks {', '.join(missing)}")
    hint = " (or `make data`)" if name in ("fashion-mnist", "mnist-10k") else ""
    why = f"not found in {', '.join(str(d) for d in dirs)}"
    if partial:
        why += f" ({'; '.join(partial)})"
    if data_root:
        return None, f"{why}; run `cvgr data fetch {name} --data-root {data_root}`"
    return None, f"{why}; run `cvgr data fetch {name}`{hint} or set CVGR_DATA"


def locate(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """Directory holding NAME's files, or a UserError saying where we looked and the fix."""
    directory, why = find(name, data_root)
    if directory is None:
        raise UserError(f"dataset {name!r} {why}", param="data_root" if data_root else None)
    return directory


def split_files(name: str, directory: Path, split: str) -> list[Path]:
    """The files of one split inside a located directory."""
    names = get_spec(name).reader.files(split)
    out = []
    for n in names:
        p = _present(directory, n)
        if p is None:
            raise UserError(f"{directory / n}: file not found; run `cvgr data fetch {name}`")
        out.append(p)
    return out
