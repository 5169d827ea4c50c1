"""TRADES (Zhang et al., ICML 2019): clean cross-entropy plus a KL term at a worst-case point.

The training objective, for a batch of B images::

    L = CE_mean(f(x), y) + beta_T * mean_i KL( p(x_i) || p(x'_i) ),   p = softmax(f(.))

x' is found first, with the model in eval mode (as the adversarial batches of
:mod:`cvgr.defenses.adversarial`): a small Gaussian start x + 0.001 N(0, 1), then ``steps``
signed-gradient ascent steps on sum_i KL(p(x_i) || p(x'_i)) with p(x) held fixed, each of
size ``step`` (default eps / 4, the published setting for eps 0.031, 10 steps) and followed by
projection onto the L-inf eps-ball and [0, 1]. The start must not be x itself: the KL has its
minimum at x' = x, where its gradient is zero up to rounding, and the sign of rounding noise
would steer the first step.

The outer loss is then taken in the caller's mode (train mode when training) with gradients
flowing through both p(x) and p(x'), as in the published method. x' is detached: no gradient
flows through the inner maximisation. Parameter gradients are never touched by
:func:`trades_batch`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.attacks.common import eval_mode, project, steepest_step
from cvgr.errors import UserError

__all__ = ["TRADES_START_STD", "TRADES_STEP_FRACTION", "TradesLoss", "kl_per_image",
           "trades_batch", "trades_loss"]

TRADES_STEP_FRACTION = 0.25
"""Default inner step = TRADES_STEP_FRACTION * eps (published: 0.007 for eps 0.031, ~eps/4)."""
TRADES_START_STD = 0.001
"""Standard deviation of the Gaussian start around x (published: 0.001)."""


class TradesLoss(NamedTuple):
    """Output of :func:`trades_loss`; ``kl`` is the batch-mean KL, not beta_T * KL."""

    total: Tensor
    ce: Tensor
    kl: Tensor
    logits: Tensor


def kl_per_image(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(softmax(logits_p) || softmax(logits_q)) per row, from log-softmaxes (stable)."""
    log_p = F.log_softmax(logits_p, dim=1)
    log_q = F.log_softmax(logits_q, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def _check(x: Tensor, y: Tensor | None, eps: float, steps: int | None = None,
           step: float | None = None) -> None:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not (
            math.isfinite(eps) and 0 <= eps <= 1):
        raise UserError(f"TRADES eps must be in [0, 1] (images are in [0, 1]), got {eps!r}",
                        param="adv_eps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or steps < 1):
        raise UserError(f"TRADES steps must be an integer >= 1, got {steps!r}",
                        param="adv_steps")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)
                             or not (math.isfinite(step) and step > 0)):
        raise UserError(f"TRADES step size must be a number > 0, got {step!r}", param="step")
    if x.dim() < 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise UserError(f"expected a non-empty float batch (N, ...), got shape "
                        f"{tuple(x.shape)} {x.dtype}")
    if y is not None and (y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point()):
        raise UserError(f"labels must be an integer vector of length {x.shape[0]}, got "
                        f"{tuple(y.shape)} {y.dtype}")


def trades_batch(model: nn.Module, x: Tensor, eps: float, steps: int,
                 step: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """x' (detached) inside the L-inf eps-ball around the [0, 1] images x and inside [0, 1],
    after ``steps`` signed ascent steps on sum_i KL(p(x_i) || p(x'_i)) from x + 0.001 N(0, 1).

    ``step`` defaults to eps / 4. Runs the model in eval mode and restores its mode.
    eps = 0 returns a copy of x.
    """
    _check(x, None, eps, steps, step)
    alpha = TRADES_STEP_FRACTION * eps if step is None else float(step)
    x = x.detach()
    if eps == 0:
        return x.clone()
    with eval_mode(model):
        with torch.no_grad():
            p_logits = model(x)
        dev = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        adv = project(x + TRADES_START_STD * noise.to(x.device), x, eps, "linf")
        for _ in range(steps):
            with torch.enable_grad():
                xa = adv.requires_grad_(True)
                kl = kl_per_image(p_logits, model(xa)).sum()
                (grad,) = torch.autograd.grad(kl, xa)
            adv = project(adv.detach() + alpha * steepest_step(grad, "linf"), x, eps, "linf")
    return adv


def trades_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
                beta: float) -> TradesLoss:
    """``TradesLoss(total, ce, kl, logits)``: total = CE_mean(f(x), y) + beta * mean_i KL(p(x_i)
    || p(x'_i)), differentiable through both forwards (two forwards, in the model's current
    mode); ``logits`` are the clean ones (training accuracy)."""
    _check(x, y, 0.0)
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not (
            math.isfinite(beta) and beta >= 0):
        raise UserError(f"TRADES weight beta must be a number >= 0, got {beta!r}",
                        param="trades")
    if x_adv.shape != x.shape:
        raise UserError(f"x_adv has shape {tuple(x_adv.shape)}, x {tuple(x.shape)}; "
                        "make x_adv with trades_batch(model, x, ...)")
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    kl = kl_per_image(logits, model(x_adv.detach())).mean()
    return TradesLoss(ce + beta * kl, ce, kl, logits)
