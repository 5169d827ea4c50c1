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

__all__ = ["FGSM", "fgsm"]


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str = "linf") -> Tensor:
    """x + eps * sign(grad CE) clipped to [0, 1]; with norm="l2" the step is eps * grad/|grad|.

    No random start (Goodfellow et al.'s attack as the paper uses it). Returns new images; the
    model's train/eval mode is restored and no parameter gradient is touched.
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


class FGSM:
    """torchattacks-style wrapper: ``FGSM(model, eps=0.1)(x, y)``."""

    def __init__(self, model: nn.Module, eps: float = 0.1, norm: str = "linf") -> None:
        self.model, self.eps, self.norm = model, eps, norm

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return fgsm(self.model, x, y, self.eps, norm=self.norm)
