"""prepare / augment / noise against independent per-image numpy computations; Loader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from cvgr.data import DATASETS, Loader, add_gaussian_noise, augment, channel_stats, prepare
from cvgr.data.augment import flip_crop
from cvgr.errors import UserError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _np_flip_crop(img: np.ndarray, pad: int, flip: bool, top: int, left: int) -> np.ndarray:
    """One image (C, H, W): edge pad, crop, mirror: the obvious slow way."""
    c, h, w = img.shape
    p = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    out = p[:, top:top + h, left:left + w]
    return out[:, :, ::-1] if flip else out


def _candidates(img: np.ndarray, pad: int) -> list[tuple[tuple[bool, int, int], np.ndarray]]:
    return [((f, t, l), _np_flip_crop(img, pad, f, t, l))
            for f in (False, True) for t in range(2 * pad + 1) for l in range(2 * pad + 1)]


def test_registry_shapes():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "mnist-10k", "svhn", "cifar10"}
    for name in ("mnist", "fashion-mnist", "mnist-10k", "svhn"):
        assert DATASETS[name].input_shape == (1, 28, 28)
    assert DATASETS["cifar10"].input_shape == (3, 32, 32)
    assert all(s.num_classes == 10 for s in DATASETS.values())


@pytest.mark.parametrize("pad,shape", [(1, (6, 1, 28, 28)), (4, (5, 3, 32, 32)), (2, (3, 2, 5, 7))])
def test_flip_crop_matches_per_image_numpy(pad, shape):
    g = torch.Generator().manual_seed(pad)
    x = torch.rand(shape, generator=g)
    n = shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    top = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    out = flip_crop(x, pad, flip, top, left)
    assert out.shape == x.shape
    for i in range(n):
        ref = _np_flip_crop(x[i].numpy(), pad, bool(flip[i]), int(top[i]), int(left[i]))
        np.testing.assert_array_equal(out[i].numpy(), ref)


@pytest.mark.parametrize("name,pad", [("fashion-mnist", 1), ("cifar10", 4)])
def test_augment_is_a_flip_crop_of_each_image_and_covers_all(name, pad):
    c, h, w = DATASETS[name].input_shape
    n = 300 if pad == 1 else 40
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(0))
    out = augment(name, x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    seen = set()
    for i in range(n):
        got = out[i].numpy()
        matches = [k for k, ref in _candidates(x[i].numpy(), pad) if np.array_equal(got, ref)]
        assert matches, f"image {i} is not a flip/crop of its input"
        seen.add(matches[0])
    if pad == 1:  # 300 draws over 18 equally likely outcomes: all of them show up
        assert len(seen) == 2 * 3 * 3
    else:
        assert {k[0] for k in seen} == {False, True} and len(seen) > 20


def test_augment_determinism_and_identity():
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    a = augment("fashion-mnist", x, torch.Generator().manual_seed(7))
    b = augment("fashion-mnist", x, torch.Generator().manual_seed(7))
    c = augment("fashion-mnist", x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for name in ("mnist", "mnist-10k", "svhn"):
        assert torch.equal(augment(name, x, torch.Generator().manual_seed(7)), x)


def test_prepare_svhn_against_numpy():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    imgs[4] = 77  # constant image: defined output, no NaN
    out = prepare("svhn", torch.from_numpy(imgs))
    assert out.shape == (5, 1, 28, 28) and out.dtype == torch.float32
    for i in range(4):
        crop = imgs[i, :, 2:30, 2:30].astype(np.float64)
        lum = 0.2989 * crop[0] + 0.5870 * crop[1] + 0.1140 * crop[2]
        ref = (lum - lum.min()) / (lum.max() - lum.min())
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-5)
        assert float(out[i].min()) == 0 and abs(float(out[i].max()) - 1) < 1e-6
    assert torch.all(torch.isfinite(out[4])) and float(out[4].abs().max()) == 0


def test_prepare_scales_and_checks_shape():
    imgs = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    with pytest.raises(ValueError, match="cifar10 images must be"):
        prepare("cifar10", imgs)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    np.testing.assert_allclose(prepare("cifar10", x).numpy(), x.numpy() / 255.0, rtol=1e-6)


def test_gaussian_noise():
    x = torch.full((200, 1, 28, 28), 0.5)
    a = add_gaussian_noise(x, 0.05, torch.Generator().manual_seed(0))
    b = add_gaussian_noise(x, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert abs(float((a - x).std()) - 0.05) < 0.002 and abs(float((a - x).mean())) < 0.002
    big = add_gaussian_noise(torch.rand(64, 1, 8, 8), 2.0)
    assert float(big.min()) == 0.0 and float(big.max()) == 1.0  # clamped
    assert torch.equal(add_gaussian_noise(x, 0.0), x)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(UserError, match="sigma"):
            add_gaussian_noise(x, bad)


# --------------------------------------------------------------------------- Loader


def _write_fake(root: Path, name: str, n_train: int, n_test: int) -> None:
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I",
                                                                         *arr.shape)
            (d / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(head + arr.tobytes()))


@pytest.fixture
def fake_root(tmp_path):
    _write_fake(tmp_path, "fashion-mnist", 103, 21)
    _write_fake(tmp_path, "mnist", 103, 21)
    return tmp_path


def _batches(loader, e):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(e)]


def test_loader_deterministic_per_seed_and_epoch(fake_root):
    a = Loader("fashion-mnist", "train", 16, train=True, seed=3, data_root=fake_root)
    b = Loader("fashion-mnist", "train", 16, train=True, seed=3, data_root=fake_root)
    assert len(a) == 7  # 103 / 16 -> 6 full + 1 partial
    ea, eb = _batches(a, 5), _batches(b, 5)
    assert [x.shape[0] for x, _ in ea] == [16] * 6 + [7]
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2)
               for (x1, y1), (x2, y2) in zip(ea, eb, strict=True))
    other = _batches(a, 6)
    assert not torch.equal(torch.cat([y for _, y in ea]), torch.cat([y for _, y in other]))
    seed4 = _batches(Loader("fashion-mnist", "train", 16, train=True, seed=4,
                            data_root=fake_root), 5)
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(ea, seed4, strict=True))
    labels = torch.cat([y for _, y in ea])  # every image exactly once per epoch
    assert sorted(labels.tolist()) == sorted(a.labels.tolist())
    for x, y in ea:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1


def test_loader_train_without_augmentation_is_a_permutation(fake_root):
    lo = Loader("mnist", "train", 10, train=True, seed=0, data_root=fake_root)
    xs = torch.cat([x for x, _ in lo.epoch(2)])
    ref = prepare("mnist", lo.images)
    key = lambda t: sorted(map(bytes, (t * 255).round().to(torch.uint8).flatten(1).numpy()))  # noqa: E731
    assert key(xs) == key(ref)
    assert not torch.equal(xs, ref)  # shuffled


def test_loader_eval_in_order_and_limit(fake_root):
    lo = Loader("fashion-mnist", "test", 8, train=False, n_images=19, data_root=fake_root)
    assert lo.images.shape == (19, 1, 28, 28) and len(lo) == 3
    xs, ys = zip(*lo.epoch(0), strict=True)
    assert torch.equal(torch.cat(xs), prepare("fashion-mnist", lo.images))
    assert torch.equal(torch.cat(ys), lo.labels) and lo.labels.tolist()[:3] == [0, 1, 2]
    again = list(lo.epoch(9))
    assert all(torch.equal(x, x2) for x, (x2, _) in zip(xs, again, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_loader_cuda_matches_cpu(fake_root):
    cpu = _batches(Loader("fashion-mnist", "train", 16, train=True, seed=1, data_root=fake_root), 2)
    gpu = Loader("fashion-mnist", "train", 16, train=True, seed=1, data_root=fake_root,
                 device="cuda")
    for (x1, y1), (x2, y2) in zip(cpu, gpu.epoch(2), strict=True):
        assert x2.device.type == "cuda"
        assert torch.equal(x1, x2.cpu()) and torch.equal(y1, y2.cpu())


def test_channel_stats_against_numpy(fake_root):
    mean, std = channel_stats("fashion-mnist", data_root=fake_root)
    x = Loader("fashion-mnist", "train", 1, train=False, data_root=fake_root).images.numpy() / 255.0
    assert len(mean) == 1 and abs(mean[0] - x.mean()) < 1e-6 and abs(std[0] - x.std()) < 1e-6


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_loader_on_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.delenv("CVGR_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lo = Loader("fashion-mnist", "train", 64, train=True, n_images=640, seed=0)
    assert len(lo) == 10 and lo.images.shape == (640, 1, 28, 28)
    x, y = next(iter(lo.epoch(0)))
    assert x.shape == (64, 1, 28, 28) and 0 <= int(y.min()) and int(y.max()) <= 9
