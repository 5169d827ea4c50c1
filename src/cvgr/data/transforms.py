"""Dataset-specific preparation that is more than x / 255 (a spec's `prepare`)."""

from __future__ import annotations

import torch

__all__ = ["LUMINANCE", "svhn_luminance"]

LUMINANCE = (0.2989, 0.5870, 0.1140)


def svhn_luminance(x: torch.Tensor) -> torch.Tensor:
    """float (N, 3, 32, 32) -> centre crop 28 of 32, luminance, then per-image min-max to
    [0, 1] (a constant image becomes all zeros)."""
    x = x[:, :, 2:30, 2:30]
    w = torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x * w).sum(1, keepdim=True)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)
