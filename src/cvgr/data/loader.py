"""Loading a split into memory, per-channel statistics, and the batch iterator."""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from cvgr.data.augment import augment, prepare
from cvgr.data.locations import locate, split_files
from cvgr.data.specs import get_spec
from cvgr.errors import UserError
from cvgr.rng import epoch_seed

__all__ = ["load", "channel_stats", "Loader", "epoch_seed", "first_test_images"]

# A few decoded splits, so that repeated loads in one process (tests, train then evaluate)
# skip the gunzip; keyed by the files' identity so a replaced file is read again.
_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_CACHE_SIZE = 4


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r}; use 'train' or 'test'")


def _read(name: str, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    return get_spec(name).reader.read(files, name)


def load(name: str, split: str, data_root: str | os.PathLike | None = None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, C, H, W) at native resolution, labels int64 (N,)) of one split."""
    get_spec(name)
    _check_split(split)
    files = split_files(name, locate(name, data_root), split)
    key = (name, split, *((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        images, labels = _CACHE[key]
    else:
        images, labels = _read(name, files)
        shape = get_spec(name).stored_shape
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape):
            raise UserError(f"{files[0]}: images are {tuple(images.shape[1:])}, but {name} images "
                            f"are {tuple(shape)}; this file is not {name}: replace it with a good "
                            f"copy (`cvgr data fetch {name}`)")
        if len(images) == 0 or len(labels) == 0:
            raise UserError(f"{files[0]}: the {split} split of {name} holds no images; the "
                            f"file is empty or damaged: replace it with a good copy "
                            f"(`cvgr data fetch {name}`)")
        _CACHE[key] = (images, labels)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())


def channel_stats(name: str, data_root: str | os.PathLike | None = None
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of the prepared train images, for normalising real nets."""
    images, _ = load(name, "train", data_root)
    c = get_spec(name).input_shape[0]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), 4096):  # chunks keep the float copy small
        x = prepare(name, images[start:start + 4096]).to(torch.float64)
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if count == 0:
        raise UserError(f"dataset {name!r} has no training images")
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


class Loader:
    """Batches of one split, held in memory as uint8 and converted per batch on `device`.

    train=True: order and augmentation are random but fixed by (seed, epoch), so a run
    resumed at epoch e sees exactly the batches it would have seen. train=False: in order,
    no augmentation. The last partial batch is kept.
    """

    def __init__(self, name: str, split: str, batch_size: int, *, train: bool, seed: int = 0,
                 n_images: int | None = None, device: str | torch.device = "cpu",
                 data_root: str | os.PathLike | None = None) -> None:
        self.spec = get_spec(name)
        self.name, self.split, self.train, self.seed = name, split, bool(train), int(seed)
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        if n_images is not None and n_images < 1:
            raise UserError(f"n_images must be >= 1 image, got {n_images}")
        if seed < 0 or seed >= 2**63:
            raise UserError(f"seed must be in 0..2**63-1, got {seed}")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        images, labels = load(name, split, data_root)
        if n_images is not None:
            images, labels = images[:n_images], labels[:n_images]
        self.images, self.labels = images, labels
        # One copy on the target device; batches are indexed there, no per-batch upload.
        if self.device.type == "cpu":
            self._images, self._labels = images, labels
        else:
            self._images, self._labels = images.to(self.device), labels.to(self.device)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def epoch(self, e: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate (x float32 [0, 1] (B, *input_shape), y int64 (B,)) on the loader's device."""
        n = len(self.labels)
        if not self.train:
            for start in range(0, n, self.batch_size):
                sl = slice(start, start + self.batch_size)
                yield prepare(self.name, self._images[sl]), self._labels[sl]
            return
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, e))
        order = torch.randperm(n, generator=gen).to(self.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = prepare(self.name, self._images[idx])
            yield augment(self.name, x, gen), self._labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)


def first_test_images(name: str, n_images: int | None = None,
                      data_root: str | os.PathLike | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n_images` test images of dataset `name` (all of them for None), on the CPU, as
    models see them: (x float in [0, 1], y int64); `data_root` is where the dataset files are."""
    loader = Loader(name, "test", 1000, train=False, n_images=n_images, device="cpu",
                    data_root=data_root)
    xs, ys = zip(*loader.epoch(0), strict=True)
    return torch.cat(xs), torch.cat(ys)
