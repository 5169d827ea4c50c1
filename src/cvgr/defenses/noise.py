"""Gaussian noise augmentation (docs/method.md section 5): clamp(x + N(0, sigma^2), 0, 1).

The implementation lives in :mod:`cvgr.data` (it is a batched augmentation); this module only
gives it its defense-side name, so the package has one noise implementation, not two.
"""

from __future__ import annotations

from cvgr.data import add_gaussian_noise as gaussian_noise

__all__ = ["gaussian_noise"]
