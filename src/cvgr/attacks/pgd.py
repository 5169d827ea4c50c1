"""Projected gradient descent (Madry et al.) in the L-inf or L2 ball, with restarts."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cvgr.attacks.common import (
    check_count,
    check_eps,
    check_inputs,
    check_norm,
    check_scale,
    eval_mode,
    keep_better,
    loss_per_image,
    project,
    random_in_ball,
    score,
    steepest_step,
)

__all__ = ["STEP_FACTOR", "pgd"]

STEP_FACTOR = 1.85
"""Default step = STEP_FACTOR * eps / steps (the reference's choice, docs/method.md section 5)."""


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int = 8, *,
        step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        norm: str = "linf", generator: torch.Generator | None = None) -> Tensor:
    """Untargeted PGD (Madry et al.) on the cross-entropy, projecting onto the eps-ball and
    [0, 1] every step.

    Per image the attack returns, from the first restart that fools the model, its fooling
    iterate of highest loss (usually the last, the most confident one), or, if nothing fools
    it, the iterate of highest loss. Keeping fooling iterates means early success is never
    undone by an overshooting later step, so the attack is at least as strong as plain
    last-iterate PGD on the same trajectory. A restart only re-attacks images not yet fooled.

    Args:
        model: maps images in [0, 1] to logits (N, classes).
        x: images in [0, 1].
        y: integer labels.
        eps: radius of the ball: 0 <= eps <= 1 (linf), at most sqrt(C*H*W) (l2).
        steps: gradient steps per restart (>= 1).
        step_size: length of each step; default ``STEP_FACTOR * eps / steps``.
        random_start: start uniformly in the ball (else at x).
        restarts: trajectories; each re-attacks only the images not yet fooled.
        norm: ``"linf"`` or ``"l2"``.
        generator: seeds the random starts (on its own device).

    Shape:
        - x: (N, *), float; y: (N,), integer.
        - Output: (N, *), new images in [0, 1] inside the eps-ball around x.

    Example::

        >>> gen = torch.Generator().manual_seed(0)
        >>> x_adv = pgd(model, x, y, eps=0.1, steps=8, generator=gen)
    """
    norm = check_norm(norm)
    check_inputs(x, y)
    eps = check_eps(eps, norm, x[0].numel() if len(x) else None)
    steps, restarts = check_count(steps, "steps"), check_count(restarts, "restarts")
    alpha = STEP_FACTOR * eps / steps if step_size is None else check_scale(step_size, "step_size")
    x = x.detach()
    if eps == 0 or len(x) == 0:
        return x.clone()
    with eval_mode(model):
        start = random_in_ball(x, eps, norm, generator) if random_start else x.clone()
        best, best_fooled, best_loss = _run(model, x, y, start, eps, alpha, steps, norm)
        for _ in range(restarts - 1):
            todo = (~best_fooled).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            xs, ys = x[todo], y[todo]
            start = random_in_ball(xs, eps, norm, generator) if random_start else xs.clone()
            xr, fr, lr = _run(model, xs, ys, start, eps, alpha, steps, norm)
            keep_better(best, best_fooled, best_loss, xr, fr, lr, index=todo)
    return best


def _run(model: nn.Module, x: Tensor, y: Tensor, start: Tensor, eps: float, alpha: float,
         steps: int, norm: str) -> tuple[Tensor, Tensor, Tensor]:
    """One PGD trajectory; returns the best iterate per image and its (fooled, loss)."""
    xa = start
    best = xa.clone()
    best_fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    best_loss = torch.full((len(x),), -float("inf"), dtype=x.dtype, device=x.device)
    for _ in range(steps):
        with torch.enable_grad():
            xa = xa.detach().requires_grad_(True)
            logits = model(xa)
            loss = loss_per_image(logits, y)
            (grad,) = torch.autograd.grad(loss.sum(), xa)
        xa = xa.detach()
        keep_better(best, best_fooled, best_loss, xa, logits.detach().argmax(1) != y,
                    loss.detach())
        xa = project(xa + alpha * steepest_step(grad, norm), x, eps, norm)
    fooled, loss = score(model, xa, y)
    keep_better(best, best_fooled, best_loss, xa, fooled, loss)
    return best, best_fooled, best_loss
