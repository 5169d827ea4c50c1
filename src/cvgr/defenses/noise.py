"""Gaussian noise augmentation (DESIGN.md section 5): x + N(0, sigma^2), clamped to [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cvgr.errors import UserError

__all__ = ["gaussian_noise"]

try:  # one implementation for the whole package when the data module provides it
    from cvgr.data import add_gaussian_noise as _shared  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the data module's progress
    _shared = None


def _gaussian_noise(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """Noisy copy of the [0, 1] images x; clamping keeps them valid images for the model."""
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not (
        math.isfinite(sigma) and sigma >= 0
    ):
        raise UserError(f"noise sigma must be a number >= 0, got {sigma!r}")
    if sigma == 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + sigma * noise).clamp_(0.0, 1.0)


gaussian_noise = _shared if _shared is not None else _gaussian_noise
