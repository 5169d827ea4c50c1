"""Fast gradient sign method: one step of size eps along the steepest-ascent direction."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cvgr.attacks.common import (
    check_eps,
    check_inputs,
    check_norm,
    eval_mode,
    loss_per_image,
    project,
    steepest_step,
)

__all__ = ["fgsm"]


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "linf",
         generator: torch.Generator | None = None) -> Tensor:
    """Fast gradient sign method: x + eps * sign(grad CE), clipped to [0, 1].

    No random start (Goodfellow et al.'s attack as the paper uses it). The model's train/eval
    mode is restored and no parameter gradient is touched.

    Args:
        model: maps images in [0, 1] to logits (N, classes).
        x: images in [0, 1].
        y: integer labels.
        eps: radius of the ball: 0 <= eps <= 1 (linf), at most sqrt(C*H*W) (l2).
        norm: ``"linf"`` (step eps * sign(grad)) or ``"l2"`` (step eps * grad / |grad|).
        generator: not used (FGSM draws nothing); taken so every attack is called alike.

    Shape:
        - x: (N, *), float; y: (N,), integer.
        - Output: (N, *), new images in [0, 1] inside the eps-ball around x.

    Example::

        >>> x_adv = fgsm(model, x, y, eps=0.1)
        >>> robust = (model(x_adv).argmax(1) == y).float().mean()
    """
    norm = check_norm(norm)
    eps = check_eps(eps, norm, x[0].numel() if x.dim() > 1 and len(x) else None)
    check_inputs(x, y)
    if eps == 0 or len(x) == 0:
        return x.detach().clone()
    with eval_mode(model), torch.enable_grad():
        xa = x.detach().clone().requires_grad_(True)
        loss = loss_per_image(model(xa), y).sum()
        (grad,) = torch.autograd.grad(loss, xa)
    return project(x.detach() + eps * steepest_step(grad, norm), x.detach(), eps, norm).detach()
