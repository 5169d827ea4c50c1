"""NES (Ilyas et al., 2018): a query-only attack that estimates the gradient from scores.

The model is only ever called forward under ``torch.no_grad()``: a defense that hides or
breaks its gradients (gradient masking) cannot stop this attack the way it stops PGD, which is
why NES accuracy below PGD accuracy is a masking flag (see ``cvgr.evaluate.masking_checks``).
"""

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
from cvgr.attacks.pgd import STEP_FACTOR

__all__ = ["nes", "nes_gradient"]


@torch.no_grad()
def nes_gradient(model: nn.Module, x: Tensor, y: Tensor, queries: int = 100,
                 sigma: float = 0.001, generator: torch.Generator | None = None,
                 chunk: int = 4096) -> Tensor:
    """Estimate d CE(model(x), y) / dx per image from 2*`queries` antithetic Gaussian probes.

    g = sum_k [l(x + sigma u_k) - l(x - sigma u_k)] u_k / (2 sigma queries), u_k ~ N(0, I),
    where l is the cross-entropy of the true class, i.e. minus its log-probability score.
    Probes are evaluated `chunk` images per forward pass to bound memory.
    """
    queries, chunk = check_count(queries, "queries"), check_count(chunk, "chunk")
    sigma = check_scale(sigma, "sigma")
    n = len(x)
    grad = torch.zeros_like(x)
    dev = generator.device if generator is not None else x.device
    per = max(1, chunk // max(1, 2 * n))  # probe pairs per forward pass
    done = 0
    while done < queries:
        k = min(per, queries - done)
        u = torch.randn((k, *x.shape), generator=generator, device=dev, dtype=x.dtype)
        u = u.to(x.device)
        probes = torch.cat([x + sigma * u, x - sigma * u]).flatten(0, 1)
        yy = y.repeat(2 * k)
        loss = loss_per_image(model(probes), yy).view(2, k, n)
        diff = (loss[0] - loss[1]).view(k, n, *([1] * (x.dim() - 1)))
        grad += (diff * u).sum(0)
        done += k
    return grad / (2 * sigma * queries)


@torch.no_grad()
def nes(model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int = 8, *,
        queries: int = 100, sigma: float = 0.001, step_size: float | None = None,
        norm: str = "linf", random_start: bool = False,
        generator: torch.Generator | None = None, chunk: int = 4096) -> Tensor:
    """PGD driven by NES gradient estimates (Ilyas et al.); never calls backward on the model.

    Each step costs 2*`queries` + 1 forward passes per image still correctly classified;
    fooled images stop querying and keep their fooling iterate (a query-limited attacker
    stops at success).

    Args:
        model: maps images in [0, 1] to logits (N, classes); only called forward.
        x: images in [0, 1].
        y: integer labels.
        eps: radius of the ball: 0 <= eps <= 1 (linf), at most sqrt(C*H*W) (l2).
        steps: estimated-gradient steps (>= 1).
        queries: antithetic probe pairs per gradient estimate.
        sigma: probe scale (float32 resolution up to 1).
        step_size: length of each step; default ``STEP_FACTOR * eps / steps``, as for PGD.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start uniformly in the ball (else at x).
        generator: seeds the probes and the random start (on its own device).
        chunk: images per forward pass while probing (bounds memory).

    Shape:
        - x: (N, *), float; y: (N,), integer.
        - Output: (N, *), new images in [0, 1] inside the eps-ball around x.

    Example::

        >>> gen = torch.Generator().manual_seed(0)
        >>> x_adv = nes(model, x, y, eps=0.1, steps=8, queries=100, generator=gen)
    """
    norm = check_norm(norm)
    check_inputs(x, y)
    eps = check_eps(eps, norm, x[0].numel() if len(x) else None)
    steps = check_count(steps, "steps")
    queries, chunk = check_count(queries, "queries"), check_count(chunk, "chunk")
    sigma = check_scale(sigma, "sigma")
    alpha = STEP_FACTOR * eps / steps if step_size is None else check_scale(step_size, "step_size")
    x = x.detach()
    if eps == 0 or len(x) == 0:
        return x.clone()
    with eval_mode(model):
        xa = random_in_ball(x, eps, norm, generator) if random_start else x.clone()
        best = xa.clone()
        best_fooled, best_loss = score(model, xa, y)
        for _ in range(steps):
            active = (~best_fooled).nonzero().squeeze(1)
            if len(active) == 0:
                break
            xs, ys = xa[active], y[active]
            g = nes_gradient(model, xs, ys, queries, sigma, generator, chunk)
            xs = project(xs + alpha * steepest_step(g, norm), x[active], eps, norm)
            xa[active] = xs
            f, lo = score(model, xs, ys)
            keep_better(best, best_fooled, best_loss, xs, f, lo, index=active)
    return best
