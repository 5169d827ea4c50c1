"""What every AutoAttack version shares: the state of one evaluation, and its checked examples.

An evaluation attacks the images still robust, one call after another (the authors' AutoAttack
or an ART attack); :class:`AttackRun` keeps which images are still robust, the first example
that fooled each of the others, a row per attack and the flags raised on the way. Every example
a library says fooled the model goes through :meth:`AttackRun.confirm`: projected onto the
eps-ball and [0, 1] if it left them, and the model asked again; only a confirmed example
counts, so a library bug cannot inflate an attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvgr.attacks.common import project
from cvgr.evaluate.curves import predict

__all__ = ["AttackRun", "fraction"]


class AttackRun:
    """One evaluation of `model` on (x, y): the images still robust, the examples that fooled
    the others, the rows of the attacks run so far and the flags raised.

    Args:
        model: the model attacked, in eval mode.
        x, y: the images in [0, 1] and their labels.
        correct: which images the model classifies correctly (the robust ones to start with).
        eps, norm: the threat model (norm "linf" or "l2").
        seed: the seed every attack is given.
        batch_size: images per forward pass.
        dev: the model's device, where the libraries run.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, correct: Tensor, *, eps: float,
                 norm: str, seed: int, batch_size: int, dev: torch.device) -> None:
        self.model, self.x, self.y = model, x, y
        self.eps, self.norm, self.seed = eps, norm, int(seed)
        self.batch_size, self.dev = batch_size, dev
        self.robust = correct.clone()
        self.x_adv = x.detach().clone()
        self.rows: list[dict[str, Any]] = []
        self.flags: list[str] = []

    def confirm(self, idx: Tensor, adv: Tensor, claimed: Tensor) -> int:
        """Count the claimed examples (of images x[idx]) that really fool the model; returns
        how many claims did not hold."""
        idx, adv = idx[claimed], adv[claimed].to(self.x.device, self.x.dtype)
        if not len(idx):
            return 0
        xs, ys = self.x[idx], self.y[idx]
        delta = (adv - xs).flatten(1)
        size = delta.abs().amax(1) if self.norm == "linf" else delta.norm(dim=1)
        outside = (size > self.eps) | (adv.flatten(1).amin(1) < 0) | (adv.flatten(1).amax(1) > 1)
        adv[outside] = project(adv[outside], xs[outside], self.eps, self.norm)
        fooled = predict(self.model, adv, self.batch_size)[0] != ys
        self.x_adv[idx[fooled]] = adv[fooled]
        self.robust[idx[fooled]] = False
        return int((~fooled).sum())

    def robust_accuracy(self) -> float:
        """The fraction of all images still robust."""
        return self.robust.float().mean().item()


def fraction(k: int, n: int) -> float:
    """k / n in float32, as a tensor's mean gives it (the result's other accuracies)."""
    return float(np.float32(k) / np.float32(n))
