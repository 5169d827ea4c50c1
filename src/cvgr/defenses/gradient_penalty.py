"""Input-gradient regularization ("double backpropagation"), docs/method.md sections 3-4.

The penalty is the reference code's definition, kept so that the paper's beta values mean the
same here::

    P = mean_i || d CE_mean / d x_i ||_q^2 = mean_i || grad_x l_i ||_q^2 / B^2

CE_mean is the batch-mean cross-entropy, l_i the loss of image i, B the batch size and x the
[0, 1] images as the model receives them. Because CE_mean carries 1/B, the per-image gradient
is grad l_i / B, hence the 1/B^2. The training objective is ``CE_mean + beta * P``; beta is
applied outside :func:`input_gradient_penalty` (and inside :func:`gradient_regularized_loss`).

Modes:

* ``"exact"``: double backpropagation; every derivative exact.
* ``"reference"``: the same under :func:`cvgr.nn.second_order_mode` ``"reference"``: each
  complex layer's second pass holds z/|z| and e^{ix} constant (the published code's variant).
* ``"fd"``: Finlay & Oberman (2021). The second backward pass is replaced by a second forward:
  d_i = (l_i(x_i + h v_i) - l_i(x_i)) / h with v = sign(g) (q = 1) or g / ||g||_2 (q = 2), g the
  detached input gradient. Then d_i -> g_i . v_i = ||grad l_i||_q as h -> 0, so
  P_fd = mean_i (d_i / B)^2 matches the exact penalty to first order in h. Its parameter
  gradient flows only through the two forward passes (v held constant), which is also the
  exact gradient of ||grad l_i||_q to first order, since d||g||_q / dg . dg = v . dg.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.errors import UserError
from cvgr.names import GRMode, SecondOrder, is_one_of
from cvgr.nn import second_order_mode

__all__ = [
    "DEFAULT_FD_STEP",
    "GRLoss",
    "gradient_regularized_loss",
    "input_gradient_penalty",
]

# Default finite-difference step h per q. For q = 1 the step h * sign(g) moves every pixel by
# h: 0.01 is 1/255 * 2.55, a tenth of the smallest L-inf budget the paper attacks with (~0.1)
# and far inside [0, 1], yet the loss change h * ||g||_1 stays orders of magnitude above
# float32 rounding of the loss. For q = 2 the step has L2 norm h; 0.1 is likewise a small
# fraction of the L2 budgets of interest (1 to 3 on 28x28 images) and gives a comparable
# per-pixel move (0.1 / 28 rms), since ||g||_2 is ~sqrt(d) smaller than ||g||_1.
DEFAULT_FD_STEP = {1: 0.01, 2: 0.1}


class GRLoss(NamedTuple):
    """Output of :func:`gradient_regularized_loss`; ``penalty`` is P, not beta * P."""

    total: Tensor
    ce: Tensor
    penalty: Tensor
    logits: Tensor


def check_inputs(x: Tensor, y: Tensor, q: int, mode: str, h: float | None) -> None:
    """Refuse, with a one-line UserError, a penalty mode, norm, step or batch that is not one."""
    if not is_one_of(mode, GRMode):
        raise UserError(f"unknown gradient-penalty mode {mode!r}; choose from "
                        f"{', '.join(GRMode)}", param="mode")
    if isinstance(q, bool) or q not in (1, 2):
        raise UserError(f"gradient-penalty norm q must be 1 or 2, got {q!r}")
    if h is not None and not (isinstance(h, int | float) and math.isfinite(h) and h > 0):
        raise UserError(f"finite-difference step h must be a positive number, got {h!r}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise UserError(f"expected a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise UserError(
            f"labels must be an integer vector of length {x.shape[0]}, got "
            f"{tuple(y.shape)} {y.dtype}"
        )


def check_beta(beta: float) -> None:
    """Refuse a penalty weight that is not a finite number >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not (
        math.isfinite(beta) and beta >= 0
    ):
        raise UserError(f"gradient-regularization weight beta must be >= 0, got {beta!r}")


def _as_input(x: Tensor) -> Tensor:
    """x itself if it already carries a graph, else a detached leaf that requires grad."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def grad_norm_sq(g: Tensor, q: int) -> Tensor:
    """||g_i||_q^2 per sample, without a sqrt (smooth at g = 0 for q = 2)."""
    g = g.flatten(1)
    return g.abs().sum(1).square() if q == 1 else g.square().sum(1)


@contextmanager
def _frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    """Keep BatchNorm running statistics unchanged across an extra (perturbed) forward pass."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
            saved.append((m, [b.clone() for b in m.buffers()]))
    try:
        yield
    finally:
        with torch.no_grad():
            for m, bufs in saved:
                for b, s in zip(m.buffers(), bufs, strict=True):
                    b.copy_(s)


def _fd_direction(g: Tensor, q: int) -> Tensor:
    if q == 1:
        return g.sign()
    norm = g.flatten(1).norm(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def _penalty_and_ce(
    model: nn.Module, x: Tensor, y: Tensor, q: int, mode: str, h: float | None,
    create_graph: bool, keep_ce_graph: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """(penalty, ce, logits) from ONE forward at x (plus one at x + h v for fd).

    ``keep_ce_graph`` keeps the forward graph alive after the input-gradient pass, so that
    ``ce`` can still be backpropagated when the penalty itself is detached.
    """
    retain = create_graph or keep_ce_graph
    xg = _as_input(x)
    if mode == GRMode.FD:
        step = DEFAULT_FD_STEP[q] if h is None else float(h)
        logits = model(xg)
        losses = F.cross_entropy(logits, y, reduction="none")
        ce = losses.mean()
        # Input gradient only: no parameter gradients, no graph through it.
        (g,) = torch.autograd.grad(ce, xg, retain_graph=retain)
        x2 = x.detach() + step * _fd_direction(g, q)
        grad_ctx = nullcontext() if create_graph else torch.no_grad()
        with _frozen_batchnorm(model), grad_ctx:
            losses2 = F.cross_entropy(model(x2), y, reduction="none")
        first = losses if create_graph else losses.detach()
        d = (losses2 - first) / (step * x.shape[0])
        return d.square().mean(), ce, logits
    ctx = second_order_mode(model, SecondOrder.REFERENCE) if mode == GRMode.REFERENCE \
        else nullcontext()
    with ctx:  # the layers pick their backward at forward time
        logits = model(xg)
    ce = F.cross_entropy(logits, y)
    (g,) = torch.autograd.grad(ce, xg, create_graph=create_graph, retain_graph=retain)
    return grad_norm_sq(g, q).mean(), ce, logits


def input_gradient_penalty(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    q: int = 1,
    mode: str = GRMode.EXACT,
    h: float | None = None,
    create_graph: bool = True,
) -> Tensor:
    """P = mean_i ||d CE_mean / d x_i||_q^2 (= mean_i ||grad l_i||_q^2 / B^2) as a scalar.

    Differentiable w.r.t. the parameters when ``create_graph`` (training); detached otherwise
    (logging, evaluation). ``h`` is the fd step (default :data:`DEFAULT_FD_STEP` [q]); the fd
    probe x + h v is not clipped to [0, 1], since clipping would break d_i ~ ||grad l_i||_q.
    When you also need the loss, use :func:`gradient_regularized_loss` (one forward, not two).
    """
    check_inputs(x, y, q, mode, h)
    return _penalty_and_ce(model, x, y, q, mode, h, create_graph, keep_ce_graph=False)[0]


def gradient_regularized_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    beta: float,
    q: int = 1,
    mode: str = GRMode.EXACT,
    h: float | None = None,
) -> GRLoss:
    """Training objective CE_mean + beta * P, sharing one forward pass between CE and P.

    Returns ``GRLoss(total, ce, penalty, logits)``: call ``total.backward()``; log ``ce`` and
    ``penalty`` (the GR loss, already without beta); ``logits`` give the training accuracy.
    With beta = 0 the penalty is still reported but detached, so it adds no second pass.
    """
    check_inputs(x, y, q, mode, h)
    check_beta(beta)
    penalty, ce, logits = _penalty_and_ce(
        model, x, y, q, mode, h, create_graph=beta > 0, keep_ce_graph=True
    )
    total = ce + beta * penalty if beta > 0 else ce
    return GRLoss(total, ce, penalty, logits)
