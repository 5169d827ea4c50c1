"""Deterministic preparation and random train-time augmentation, on whole batch tensors.

Everything here works on a batch at once (no per-image Python loop) on whatever device the
batch lives on. Random draws come from the given torch.Generator on that generator's device
(CPU for the default one) and are then moved to the batch, so a seeded run draws the same
numbers whether it trains on CPU or GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cvgr.data.specs import get_spec
from cvgr.data.transforms import LUMINANCE
from cvgr.errors import UserError

__all__ = ["prepare", "augment", "flip_crop", "add_gaussian_noise", "LUMINANCE"]


def prepare(name: str, images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) native images -> float32 in [0, 1] shaped (N, *input_shape).

    x / 255, unless the dataset's spec has its own `prepare` (SVHN: centre crop 28 of 32,
    luminance, then per-image min-max to [0, 1]).
    """
    spec = get_spec(name)
    x = images.to(torch.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != spec.stored_shape:
        raise UserError(f"{name} images must be (N, {', '.join(map(str, spec.stored_shape))}), "
                        f"got {tuple(x.shape)}", param="images")
    return spec.prepare(x) if spec.prepare is not None else x / 255.0


def flip_crop(x: torch.Tensor, pad: int, flip: torch.Tensor, top: torch.Tensor,
              left: torch.Tensor) -> torch.Tensor:
    """Edge-pad by `pad`, crop H x W at (top[i], left[i]), then mirror image i where flip[i].

    Two gathers on the padded batch do all images at once; the flip is folded into the
    column index, so it costs nothing extra.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate") if pad else x
    dev = x.device
    rows = top.to(dev).view(n, 1) + torch.arange(h, device=dev).view(1, h)          # (n, h)
    j = torch.arange(w, device=dev).view(1, w)
    j = torch.where(flip.to(dev).view(n, 1), w - 1 - j, j)
    cols = left.to(dev).view(n, 1) + j                                                # (n, w)
    wp = padded.shape[3]
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, wp))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def _gen_device(generator: torch.Generator | None, x: torch.Tensor) -> torch.device:
    return generator.device if generator is not None else x.device


def augment(name: str, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random train-time augmentation of a prepared batch: a random flip and a random full-size
    crop after the spec's `augment_pad` pixels of edge padding (fashion-mnist 1, cifar10 4);
    identity for a dataset without `augment_pad`.
    """
    pad = get_spec(name).augment_pad
    if pad is None or x.shape[0] == 0:
        return x
    n, dev = x.shape[0], _gen_device(generator, x)
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=dev)
    return flip_crop(x, pad, flip, offsets[0], offsets[1])


def add_gaussian_noise(x: torch.Tensor, sigma: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """clamp(x + sigma * N(0, 1), 0, 1): the noise defence, keeping images valid."""
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) \
            or not math.isfinite(sigma) or sigma < 0:
        raise UserError(f"noise sigma must be a finite number >= 0, got {sigma!r}")
    if sigma == 0:
        return x.clone()  # always a new tensor, so callers may modify the result in place
    noise = torch.randn(x.shape, generator=generator, device=_gen_device(generator, x),
                        dtype=x.dtype)
    return (x + sigma * noise.to(x.device)).clamp_(0.0, 1.0)
