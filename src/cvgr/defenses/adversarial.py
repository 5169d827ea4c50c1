"""PGD / FGSM examples for adversarial training (DESIGN.md section 5).

A small training-side implementation, independent of :mod:`cvgr.attacks`, so the trainer's
hot path depends on nothing but a model and tensors. The attack runs with the model in eval
mode and restores the caller's mode afterwards: BatchNorm then uses its running statistics
(the attack does not depend on which other images share the batch, and the k attack forwards
do not pollute the running statistics with intermediate iterates); dropout-free nets are
unaffected. Parameter gradients are never computed or accumulated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.errors import UserError

__all__ = ["ADVERSARIAL_KINDS", "PGD_STEP_FACTOR", "adversarial_batch"]

ADVERSARIAL_KINDS = ("pgd", "fgsm")
# Step size = PGD_STEP_FACTOR * eps / k (the reference's choice): k steps can travel 1.85 eps,
# enough to cross the ball and come back after a random start.
PGD_STEP_FACTOR = 1.85


def _input_grad(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    # Summed loss: each image's step is independent of the batch size (sign() drops it anyway).
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def adversarial_batch(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int,
    kind: str = "pgd",
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L-inf adversarial copies of the [0, 1] images x (detached), to train on instead of x.

    ``kind="pgd"``: optional uniform random start in the eps-ball, then ``steps`` signed-gradient
    steps of 1.85 * eps / steps, each followed by projection onto the ball and onto [0, 1].
    ``kind="fgsm"``: one step of size eps from x (no random start; ``steps`` is not used).
    """
    if kind not in ADVERSARIAL_KINDS:
        raise UserError(f"unknown adversarial kind {kind!r}; choose from {ADVERSARIAL_KINDS}")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not (
        math.isfinite(eps) and 0 <= eps <= 1
    ):
        raise UserError(f"adversarial eps must be in [0, 1] (images are in [0, 1]), got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"adversarial steps must be an integer >= 1, got {steps!r}")
    if y.shape[:1] != x.shape[:1]:
        raise UserError(f"{x.shape[0]} images but {y.shape[0]} labels")
    x = x.detach()
    if eps == 0:
        return x.clone()
    was_training = model.training
    model.eval()
    try:
        if kind == "fgsm":
            return (x + eps * _input_grad(model, x, y).sign()).clamp_(0.0, 1.0)
        lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
        adv = x.clone()
        if random_start:
            u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            adv = torch.minimum(torch.maximum(x + (2 * u - 1) * eps, lo), hi)
        alpha = PGD_STEP_FACTOR * eps / steps
        for _ in range(steps):
            adv = adv + alpha * _input_grad(model, adv, y).sign()
            adv = torch.minimum(torch.maximum(adv, lo), hi)
        return adv
    finally:
        model.train(was_training)
