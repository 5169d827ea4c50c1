"""Readers (and an IDX writer) for the datasets' native file formats.

Every reader validates what it reads and turns any problem with a user's file (missing,
truncated, wrong magic number, wrong shape, counts that disagree) into a one-line
``UserError`` naming the file, instead of a traceback from deep inside gzip or numpy.

CIFAR-10's python batches are pickles. We never call plain ``pickle.load`` on them: a
restricted unpickler resolves only the few numpy names needed to rebuild an array (and
``_codecs.encode``, which Python 3 uses to pickle bytes at protocol 2); any other global
in the stream, i.e. anything that could run code, is refused.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from cvgr.errors import RunError, UserError
from cvgr.io import atomic_write

__all__ = ["CifarPythonReader", "IdxReader", "Reader", "SvhnMatReader", "read_idx", "write_idx",
           "read_idx_pair", "read_svhn_mat", "read_cifar_batch", "read_cifar_batches",
           "safe_unpickle"]

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _fix(name: str | None) -> str:
    if name:
        return f"replace it with a good copy: remove it and run `cvgr data fetch {name}`"
    return "replace it with a good copy of the file"


def _read_bytes(path: Path, name: str | None) -> bytes:
    """Whole file, transparently un-gzipped (by content, not by extension)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; {_fix(name)}") from None
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror}); check its permissions") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise RunError(f"{path}: truncated gzip file (stream ends early); {_fix(name)}") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise RunError(f"{path}: corrupt gzip file ({e}); {_fix(name)}") from None


def read_idx(path: str | os.PathLike, name: str | None = None, ndim: int | None = None
             ) -> np.ndarray:
    """Read an IDX file (gzipped or not); `ndim` (3 images, 1 labels) is checked when given."""
    path = Path(path)
    data = _read_bytes(path, name)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise RunError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'});"
                        f" {_fix(name)}")
    dtype, nd = _IDX_DTYPES[data[2]], data[3]
    if ndim is not None and nd != ndim:
        raise RunError(f"{path}: IDX file has {nd} dimensions, expected {ndim} "
                        f"({'images' if ndim == 3 else 'labels'}); {_fix(name)}")
    header = 4 + 4 * nd
    if len(data) < header:
        raise RunError(f"{path}: IDX header truncated; {_fix(name)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=nd, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise RunError(f"{path}: IDX body has {len(data) - header} bytes, dimensions {dims} need "
                        f"{expected} (truncated or corrupt); {_fix(name)}")
    arr = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write uint8 `array` as IDX (gzip when the name ends in .gz), atomically and reproducibly."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 only, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.tobytes()
    compress = path.name.endswith(".gz") if compress is None else compress

    def w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            if compress:  # mtime=0 and no name: the same content gives the same bytes
                with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
                    g.write(payload)
            else:
                f.write(payload)
        make_readable(tmp)

    return atomic_write(path, w)


def make_readable(path: str | os.PathLike) -> None:
    """Temporary files are created 0600; data files should be readable by all, like a copy."""
    os.chmod(path, 0o644)


def read_idx_pair(images_path: Path, labels_path: Path, name: str | None = None,
                  num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from an IDX image/label file pair."""
    images = read_idx(images_path, name, ndim=3)
    labels = read_idx(labels_path, name, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise RunError(f"{images_path}: IDX data must be unsigned bytes; {_fix(name)}")
    if len(images) != len(labels):
        raise RunError(f"{labels_path}: {len(labels)} labels but {images_path.name} has "
                        f"{len(images)} images; {_fix(name)}")
    _check_labels(labels, num_classes, labels_path, name)
    return images[:, None], labels.astype(np.int64)


def _check_labels(labels: np.ndarray, num_classes: int, path: Path, name: str | None) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise RunError(f"{path}: labels outside 0..{num_classes - 1} "
                        f"(found {labels.min()}..{labels.max()}); {_fix(name)}")


def read_svhn_mat(path: str | os.PathLike, name: str | None = "svhn"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped-digits .mat: X (32, 32, 3, N) -> (N, 3, 32, 32); label 10 means digit 0."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; {_fix(name)}")
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as e:  # scipy raises many types for a bad file; all mean "not a .mat"
        raise UserError(f"{path}: not a readable MATLAB file ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'}); {_fix(name)}"
                        ) from None
    if "X" not in mat or "y" not in mat:
        raise UserError(f"{path}: .mat file lacks the SVHN variables X and y; {_fix(name)}")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise UserError(f"{path}: X has shape {x.shape} dtype {x.dtype}, expected "
                        f"(32, 32, 3, N) uint8; {_fix(name)}")
    if x.shape[3] != y.shape[0]:
        raise UserError(f"{path}: {x.shape[3]} images but {y.shape[0]} labels; {_fix(name)}")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise UserError(f"{path}: SVHN labels must be 1..10, found {y.min()}..{y.max()}; "
                        f"{_fix(name)}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    labels = (y.astype(np.int64) % 10)
    return images, labels


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    @staticmethod
    def _allowed() -> dict[tuple[str, str], object]:
        import codecs

        try:
            from numpy._core import multiarray, numeric
        except ImportError:  # numpy < 2
            from numpy.core import multiarray, numeric  # type: ignore[no-redef]
        allowed: dict[tuple[str, str], object] = {
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode,
        }
        for mod in ("numpy.core", "numpy._core"):
            allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
            allowed[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
            if hasattr(numeric, "_frombuffer"):
                allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
        return allowed

    def find_class(self, module: str, name: str) -> object:
        obj = self._allowed().get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return obj


def safe_unpickle(data: bytes) -> object:
    """Unpickle bytes that may only hold numpy arrays, numbers, strings and containers."""
    return _ArrayOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def read_cifar_batch(path: str | os.PathLike, name: str | None = "cifar10"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (N, 3, 32, 32) uint8, labels (N,) int64."""
    path = Path(path)
    raw = _read_bytes(path, name)
    try:
        obj = safe_unpickle(raw)
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: not a CIFAR-10 batch ({e}); {_fix(name)}") from None
    except Exception as e:  # truncated or garbage pickle streams raise assorted errors
        raise UserError(f"{path}: corrupt or truncated pickle ({type(e).__name__}); "
                        f"{_fix(name)}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a CIFAR-10 batch (holds a {type(obj).__name__}, "
                        f"expected a dict); {_fix(name)}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in d or "labels" not in d:
        raise UserError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels'; {_fix(name)}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", type(data).__name__)
        raise UserError(f"{path}: 'data' is {shape}, expected (N, 3072) uint8; {_fix(name)}")
    try:
        labels = np.asarray(d["labels"], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{path}: 'labels' is not a list of integers; {_fix(name)}") from None
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels; {_fix(name)}")
    _check_labels(labels, 10, path, name)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels


def read_cifar_batches(paths: list[Path], name: str | None = "cifar10"
                       ) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_batch(p, name) for p in paths]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


# -- one reader per file format: what a dataset spec points to --------------------------------


class Reader:
    """How a dataset's files are named and read. A new format is one subclass.

    `files(split)`: the file names of a split (an IDX name may also be found with ``.gz``);
    `read(paths, name)`: (uint8 images (N, C, H, W), int64 labels (N,)) from those files, with
    every problem a one-line UserError; `subdir`: a folder the files may also sit in.
    """

    subdir: ClassVar[str | None] = None

    def files(self, split: str) -> tuple[str, ...]:
        raise NotImplementedError

    def read(self, paths: Sequence[Path], name: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@dataclass(frozen=True)
class IdxReader(Reader):
    """An IDX image file and an IDX label file per split (MNIST's layout)."""

    FILES: ClassVar[dict[str, tuple[str, str]]] = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def files(self, split: str) -> tuple[str, ...]:
        return self.FILES[split]

    def read(self, paths: Sequence[Path], name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_idx_pair(paths[0], paths[1], name)


@dataclass(frozen=True)
class SvhnMatReader(Reader):
    """SVHN's cropped-digit ``{split}_32x32.mat`` files."""

    def files(self, split: str) -> tuple[str, ...]:
        return (f"{split}_32x32.mat",)

    def read(self, paths: Sequence[Path], name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_svhn_mat(paths[0], name)


@dataclass(frozen=True)
class CifarPythonReader(Reader):
    """CIFAR-10's python batches (five train batches, one test batch)."""

    subdir: ClassVar[str | None] = "cifar-10-batches-py"
    TRAIN: ClassVar[tuple[str, ...]] = tuple(f"data_batch_{i}" for i in range(1, 6))

    def files(self, split: str) -> tuple[str, ...]:
        return self.TRAIN if split == "train" else ("test_batch",)

    def read(self, paths: Sequence[Path], name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_cifar_batches(list(paths), name)
