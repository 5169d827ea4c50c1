"""Native-format readers: exact round trips, real Fashion-MNIST, and clear errors on bad files."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cvgr.data import load, locate
from cvgr.data.readers import (
    read_cifar_batch,
    read_idx,
    read_idx_pair,
    read_svhn_mat,
    safe_unpickle,
    write_idx,
)
from cvgr.errors import RunError, UserError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(arr: np.ndarray) -> bytes:
    """Independent IDX encoder (big-endian dims after a 0x0000 08 ndim magic)."""
    return struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) \
        + arr.astype(np.uint8).tobytes()


def write_idx_dataset(d: Path, n_train: int = 12, n_test: int = 5, seed: int = 0,
                      gz: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, arr, nd in (("images", x, 3), ("labels", y, 1)):
            path = d / f"{prefix}-{kind}-idx{nd}-ubyte{'.gz' if gz else ''}"
            path.write_bytes(gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
        out[split] = (x, y)
    return out


# ------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reads_back_exactly(tmp_path, gz):
    written = write_idx_dataset(tmp_path / "fashion-mnist", gz=gz)
    for split, (x, y) in written.items():
        images, labels = load("fashion-mnist", split, data_root=tmp_path)
        assert images.dtype.is_floating_point is False and str(images.dtype) == "torch.uint8"
        assert str(labels.dtype) == "torch.int64"
        assert images.shape == (len(x), 1, 28, 28)
        np.testing.assert_array_equal(images.numpy()[:, 0], x)
        np.testing.assert_array_equal(labels.numpy(), y.astype(np.int64))


def test_write_idx_round_trip_and_reproducible(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    a = write_idx(tmp_path / "a-idx3-ubyte.gz", arr)
    b = write_idx(tmp_path / "b-idx3-ubyte.gz", arr)
    assert a.read_bytes() == b.read_bytes()  # no timestamp: same data, same file
    assert gzip.decompress(a.read_bytes()) == idx_bytes(arr)
    np.testing.assert_array_equal(read_idx(a), arr)


def test_idx_truncated_gzip_names_file(tmp_path):
    write_idx_dataset(tmp_path / "fashion-mnist")
    path = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match=r"train-images-idx3-ubyte\.gz.*truncated.*cvgr data fetch"):
        load("fashion-mnist", "train", data_root=tmp_path)


def test_idx_corrupt_gzip_and_wrong_magic(tmp_path):
    p = tmp_path / "x-idx3-ubyte.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    with pytest.raises(RunError, match=r"x-idx3-ubyte\.gz.*corrupt"):
        read_idx(p)
    q = tmp_path / "y-idx3-ubyte"
    q.write_bytes(b"\x00\x01\x08\x03" + bytes(12))
    with pytest.raises(RunError, match=r"y-idx3-ubyte.*magic"):
        read_idx(q)


def test_idx_wrong_dims_body_size_and_count_mismatch(tmp_path):
    imgs = np.zeros((4, 28, 28), np.uint8)
    p = tmp_path / "imgs"
    p.write_bytes(idx_bytes(imgs)[:-5])
    with pytest.raises(RunError, match=r"imgs.*truncated or corrupt"):
        read_idx(p)
    p.write_bytes(idx_bytes(imgs))
    with pytest.raises(RunError, match=r"imgs.*3 dimensions, expected 1"):
        read_idx(p, ndim=1)
    lab = tmp_path / "labs"
    lab.write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(RunError, match=r"labs.*5 labels.*4 images"):
        read_idx_pair(p, lab)
    lab.write_bytes(idx_bytes(np.array([0, 1, 2, 12], np.uint8)))
    with pytest.raises(RunError, match=r"labs.*labels outside 0\.\.9"):
        read_idx_pair(p, lab)


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.delenv("CVGR_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing in the cache: system wins
    assert locate("fashion-mnist") == FASHION
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = load("fashion-mnist", split)
        assert x.shape == (n, 1, 28, 28) and str(x.dtype) == "torch.uint8"
        assert y.shape == (n,) and str(y.dtype) == "torch.int64"
        assert int(y.min()) == 0 and int(y.max()) == 9
        assert np.bincount(y.numpy()).tolist() == [n // 10] * 10  # balanced classes
        assert 0 < float(x.float().mean()) < 255


# ----------------------------------------------------------------------------- SVHN


def write_svhn(path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    scipy.io.savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn_mat_reads_back_exactly(tmp_path):
    x, y = write_svhn(tmp_path / "train_32x32.mat", 9)
    images, labels = read_svhn_mat(tmp_path / "train_32x32.mat")
    assert images.shape == (9, 3, 32, 32) and images.dtype == np.uint8
    for i in range(9):
        for c in range(3):
            np.testing.assert_array_equal(images[i, c], x[:, :, c, i])
    expected = [0 if v == 10 else int(v) for v in y[:, 0]]
    assert labels.tolist() == expected and labels.dtype == np.int64


def test_svhn_load_via_root(tmp_path):
    d = tmp_path / "svhn"
    d.mkdir()
    write_svhn(d / "train_32x32.mat", 6, seed=1)
    write_svhn(d / "test_32x32.mat", 4, seed=2)
    x, y = load("svhn", "test", data_root=tmp_path)
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)


def test_svhn_bad_files(tmp_path):
    p = tmp_path / "train_32x32.mat"
    p.write_bytes(b"MATLAB? no" * 30)
    with pytest.raises(UserError, match=r"train_32x32\.mat.*not a readable MATLAB file"):
        read_svhn_mat(p)
    scipy.io.savemat(p, {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(UserError, match=r"train_32x32\.mat.*X has shape"):
        read_svhn_mat(p)
    scipy.io.savemat(p, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(UserError, match=r"2 images but 3 labels"):
        read_svhn_mat(p)
    scipy.io.savemat(p, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])})
    with pytest.raises(UserError, match=r"labels must be 1\.\.10"):
        read_svhn_mat(p)


# ---------------------------------------------------------------------------- CIFAR


def write_cifar_batch(path: Path, n: int, seed: int, bytes_keys: bool = False,
                      protocol: int = pickle.DEFAULT_PROTOCOL) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    d = {"batch_label": "testing batch", "data": data, "labels": labels,
         "filenames": [f"img_{i}.png" for i in range(n)]}
    if bytes_keys:  # how Python 2's pickles of the real batches read back
        d = {k.encode(): v for k, v in d.items()}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)
    return data, labels


@pytest.mark.parametrize("protocol,bytes_keys", [(2, True), (4, False), (5, False)])
def test_cifar_batch_reads_back_exactly(tmp_path, protocol, bytes_keys):
    data, labels = write_cifar_batch(tmp_path / "b", 7, 3, bytes_keys, protocol)
    images, y = read_cifar_batch(tmp_path / "b")
    assert images.shape == (7, 3, 32, 32) and images.dtype == np.uint8
    # CIFAR layout: 1024 red, then green, then blue values, each row-major 32x32.
    np.testing.assert_array_equal(images[2, 1, 5, 7], data[2, 1024 + 5 * 32 + 7])
    np.testing.assert_array_equal(images.reshape(7, -1), data)
    assert y.tolist() == labels


def test_cifar_load_concatenates_batches(tmp_path):
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    parts = [write_cifar_batch(d / f"data_batch_{i}", 3 + i, seed=i) for i in range(1, 6)]
    write_cifar_batch(d / "test_batch", 4, seed=9)
    assert locate("cifar10", data_root=tmp_path) == d
    x, y = load("cifar10", "train", data_root=tmp_path)
    assert x.shape == (sum(3 + i for i in range(1, 6)), 3, 32, 32)
    np.testing.assert_array_equal(x.numpy().reshape(len(x), -1),
                                  np.concatenate([p[0] for p in parts]))
    assert y.tolist() == sum((p[1] for p in parts), [])


class _Evil:
    def __reduce__(self):  # os.system: `print` is patched by Ray once test_cluster imports it
        return (os.system, ("echo pwned",))


def test_cifar_unpickler_refuses_code(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({"data": _Evil(), "labels": []}))
    with pytest.raises(UserError, match=r"data_batch_1.*refusing to load (posix|nt|os)\.system"):
        read_cifar_batch(p)
    with pytest.raises(pickle.UnpicklingError):
        safe_unpickle(pickle.dumps(_Evil()))


def test_cifar_bad_batches(tmp_path):
    p = tmp_path / "data_batch_1"
    write_cifar_batch(p, 5, 0)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"data_batch_1.*(truncated|corrupt)"):
        read_cifar_batch(p)
    p.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(UserError, match=r"data_batch_1.*expected \(N, 3072\)"):
        read_cifar_batch(p)
    p.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}))
    with pytest.raises(UserError, match=r"2 images but 1 labels"):
        read_cifar_batch(p)
    p.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UserError, match=r"expected a dict"):
        read_cifar_batch(p)
