"""One training step, for every defense: the batch's noise and adversarial replacement, the
objective (cross-entropy, gradient-regularized or TRADES) and one optimiser step.

:func:`cvgr.train.loop.train_epoch` runs it once per batch; it is also the step the tests
compare with hand-written objectives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.names import AdvKind
from cvgr.train.config import TrainConfig, need

if TYPE_CHECKING:
    from cvgr.defenses.gr_step import GRStep

__all__ = ["grad_cosine", "objective", "train_step"]


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor,
               cfg: TrainConfig, gen: torch.Generator, params: Sequence[Tensor], want_cos: bool,
               fast: GRStep | None = None) -> tuple[Tensor, Tensor | None]:
    """One optimiser step on batch (x, y) with `cfg`'s defense.

    Args:
        model, opt: the net being trained and its optimiser.
        x, y: the clean batch; noise and adversarial examples are drawn from `gen`.
        params: the parameters whose gradients `want_cos` compares.
        want_cos: also measure the cosine between the CE gradient and the full objective's
            (one extra backward pass; always the eager step).
        fast: a traced/compiled GR step; with it (and GR on) the GR objective's gradients
            come from it.

    Returns:
        ([total, ce, penalty, correct] on the device, cosine or None), where `penalty` is the
        GR penalty P (GR), the batch-mean KL (TRADES) or 0.
    """
    from cvgr.defenses import adversarial_batch, gaussian_noise

    if cfg.noise > 0:
        x = gaussian_noise(x, cfg.noise, generator=gen)
    if cfg.adv_eps > 0 and not cfg.trades > 0:
        # PGD / FGSM AT; with GR the penalty below is taken at (and on the loss of) this batch
        x = adversarial_batch(model, x, y, cfg.adv_eps, need(cfg.adv_steps), attack=cfg.adv_kind,
                              random_start=cfg.adv_kind == AdvKind.PGD, generator=gen)
    if cfg.beta > 0 and fast is not None and not want_cos:
        opt.zero_grad(set_to_none=True)
        total, ce, penalty, logits = fast(x, y)  # fills p.grad
        opt.step()
        return torch.stack([total.detach(), ce.detach(), penalty.detach(),
                            (logits.detach().argmax(1) == y).sum().to(total.dtype)]), None
    total, ce, penalty, logits = objective(model, x, y, cfg, gen)
    g_ce = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True) \
        if want_cos else None
    opt.zero_grad(set_to_none=True)
    total.backward()
    cos = grad_cosine(g_ce, [p.grad for p in params]) if g_ce is not None else None
    opt.step()
    row = torch.stack([total.detach(), ce.detach(), penalty.detach(),
                       (logits.detach().argmax(1) == y).sum().to(total.dtype)])
    return row, cos


def objective(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig,
              gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(total, ce, penalty, logits) of the eager objective at the (already noised or
    adversarial) batch x: TRADES, GR, or plain cross-entropy."""
    from cvgr.defenses import gradient_regularized_loss, trades_batch, trades_loss

    if cfg.trades > 0:
        x_adv = trades_batch(model, x, cfg.adv_eps, need(cfg.adv_steps), generator=gen)
        return tuple(trades_loss(model, x, x_adv, y, cfg.trades))  # type: ignore[return-value]
    if cfg.beta > 0:
        return tuple(gradient_regularized_loss(  # type: ignore[return-value]
            model, x, y, cfg.beta, q=cfg.q, mode=cfg.gr_mode, h=cfg.fd_h))
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    return ce, ce, torch.zeros((), device=ce.device), logits


def grad_cosine(a: tuple[Tensor | None, ...], b: list[Tensor | None]) -> Tensor:
    """Cosine between two parameter gradients, flattened over all parameters."""
    dot = sq_a = sq_b = None
    for ga, gb in zip(a, b, strict=True):
        if ga is None or gb is None:
            continue
        d, na, nb = (ga * gb).sum(), (ga * ga).sum(), (gb * gb).sum()
        dot = d if dot is None else dot + d
        sq_a = na if sq_a is None else sq_a + na
        sq_b = nb if sq_b is None else sq_b + nb
    if dot is None or sq_a is None or sq_b is None:
        dev = next((g.device for g in (*a, *b) if g is not None), None)
        return torch.tensor(math.nan, device=dev)
    return (dot / (sq_a.sqrt() * sq_b.sqrt()).clamp_min(1e-30)).detach()
