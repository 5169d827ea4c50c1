"""PGD / FGSM examples for adversarial training (docs/method.md section 5).

Built from the attack primitives of :mod:`cvgr.attacks`, but the PGD here is the plain
last-iterate PGD of Madry et al. that adversarial training uses: no restarts and no per-image
best-iterate bookkeeping (the evaluation PGD's extra scoring pass would cost 1/k more per
batch for no gain in training). The attack runs with the model in eval mode and restores the
caller's mode afterwards: BatchNorm then uses its running statistics and the k attack forwards
do not pollute them with intermediate iterates. Parameter gradients are never touched.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cvgr.attacks import fgsm
from cvgr.attacks.common import eval_mode, loss_per_image, project, random_in_ball, steepest_step
from cvgr.attacks.pgd import STEP_FACTOR as PGD_STEP_FACTOR
from cvgr.errors import UserError
from cvgr.names import AdvKind, is_one_of

__all__ = ["PGD_STEP_FACTOR", "adversarial_batch"]


def adversarial_batch(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int,
    attack: str = "pgd",
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L-inf adversarial copies of the [0, 1] images x (detached), to train on instead of x.

    ``attack="pgd"``: optional uniform random start in the eps-ball, then ``steps`` signed-gradient
    steps of 1.85 * eps / steps, each followed by projection onto the ball and onto [0, 1].
    ``attack="fgsm"``: one step of size eps from x (no random start; ``steps`` is not used).
    """
    if not is_one_of(attack, AdvKind):
        raise UserError(f"unknown adversarial attack {attack!r}; choose from "
                        f"{', '.join(AdvKind)}", param="attack")
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
    if attack == "fgsm":
        return fgsm(model, x, y, eps)
    alpha = PGD_STEP_FACTOR * eps / steps
    with eval_mode(model):
        adv = random_in_ball(x, eps, "linf", generator) if random_start else x.clone()
        for _ in range(steps):
            with torch.enable_grad():
                xa = adv.requires_grad_(True)
                (grad,) = torch.autograd.grad(loss_per_image(model(xa), y).sum(), xa)
            adv = project(adv.detach() + alpha * steepest_step(grad, "linf"), x, eps, "linf")
    return adv
