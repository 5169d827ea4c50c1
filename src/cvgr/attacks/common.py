"""Pieces shared by every attack: argument checks, eval-mode guard, norm-ball geometry.

Attacks see only a model and tensors: images in [0, 1] shaped (N, ...), integer labels (N,).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.errors import UserError

__all__ = [
    "NORMS",
    "check_count",
    "check_inputs",
    "check_eps",
    "check_norm",
    "check_options",
    "check_scale",
    "eval_mode",
    "loss_per_image",
    "project",
    "random_in_ball",
    "steepest_step",
    "flat_norm",
    "keep_better",
    "score",
]

NORMS = ("linf", "l2")
_TINY = 1e-12


def check_norm(norm: str) -> str:
    n = str(norm).lower()
    if n in ("linf", "inf", "l_inf"):
        return "linf"
    if n in ("l2", "2"):
        return "l2"
    raise UserError(f"unknown norm {norm!r}; use linf or l2", param="norm")


def check_eps(eps: float, norm: str = "linf", dim: int | None = None,
              param: str = "eps") -> float:
    """eps must be a finite number in [0, 1] (linf) or in [0, sqrt(dim)] (l2: the box diameter).
    `param` names it in the error (check_eps for the masking checks' eps)."""
    e = _number(eps, param)
    if not math.isfinite(e) or e < 0:
        raise UserError(f"{param} = {eps} is negative or not finite; give {param} >= 0",
                        param=param)
    if norm == "linf" and e > 1:
        raise UserError(f"{param} = {eps} > 1 for an L-inf attack on [0, 1] images; give "
                        f"0 <= {param} <= 1", param=param)
    if norm == "l2" and dim is not None and e > math.sqrt(dim) + 1e-9:
        raise UserError(f"{param} = {eps} exceeds the L2 diameter sqrt({dim}) of the image box; "
                        f"give a smaller {param}", param=param)
    return e


def _number(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number, got {value!r}", param=name)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}", param=name) from None


RESOLUTION = float(torch.finfo(torch.float32).eps)
"""1.2e-07, the spacing of float32 values just below 1: a step or probe smaller than this
leaves [0, 1] images (the models compute in float32) unchanged."""

_RANGES = {"step_size": (RESOLUTION, float(torch.finfo(torch.float32).max)),
           "sigma": (RESOLUTION, 1.0)}


def check_scale(value: float, name: str) -> float:
    """A step size, a probe scale...: a finite number > 0 (0, negative or NaN silently turn an
    attack into no attack, which would report clean accuracy as robust accuracy), and for
    step_size and sigma one that can move a float32 image: at least `RESOLUTION` (a smaller
    one changes no pixel), a step_size finite in float32 and a sigma at most 1 (probes
    further out leave the image box, and 1e39 is inf in float32)."""
    v = _number(value, name)
    if not (math.isfinite(v) and v > 0):
        raise UserError(f"{name} must be a finite number > 0, got {value}", param=name)
    lo, hi = _RANGES.get(name, (0.0, math.inf))
    if v < lo:
        raise UserError(f"{name} = {value} is below the float32 resolution of [0, 1] images "
                        f"({lo:.2g}): it would change no pixel; give {name} >= {lo:.2g}",
                        param=name)
    if v > hi:
        raise UserError(f"{name} = {value} is too large to give a meaningful attack (it "
                        f"overflows float32 or leaves the [0, 1] image box); give {name} <= "
                        f"{hi:.3g}", param=name)
    return v


def check_count(value: int, name: str, minimum: int = 1) -> int:
    """A number of steps, restarts, queries...: an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value != int(value):
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}", param=name)
    if int(value) < minimum:
        raise UserError(f"{name} must be >= {minimum}, got {value}", param=name)
    return int(value)


_COUNTS = ("steps", "restarts", "queries", "chunk")
_SCALES = ("sigma",)


def check_options(**options: object) -> dict[str, object]:
    """Check every attack option given by name (steps, restarts, queries, chunk: integers >= 1;
    sigma: > 0; step_size: > 0 or None; norm); return them normalised. Unknown names pass."""
    out = dict(options)
    for k, v in options.items():
        if k in _COUNTS:
            out[k] = check_count(v, k)  # type: ignore[arg-type]
        elif k in _SCALES or (k == "step_size" and v is not None):
            out[k] = check_scale(v, k)  # type: ignore[arg-type]
        elif k == "norm":
            out[k] = check_norm(v)  # type: ignore[arg-type]
    return out


def check_inputs(x: Tensor, y: Tensor) -> None:
    if x.dim() < 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise UserError(f"attack needs images (N, ...) and labels (N,), got {tuple(x.shape)} "
                        f"and {tuple(y.shape)}")
    if not x.is_floating_point():
        raise UserError("attack needs float images in [0, 1]; divide uint8 images by 255")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise UserError(f"attack needs finite images in [0, 1]; {int((~torch.isfinite(x)).sum())}"
                        " values are NaN or inf")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise UserError("attack needs images in [0, 1]; got values outside, rescale them first")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the attack (no dropout/BN updates), the caller's mode restored afterwards."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def loss_per_image(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy per image; summed for gradients so each image's gradient ignores batch size."""
    return F.cross_entropy(logits, y, reduction="none")


def flat_norm(t: Tensor) -> Tensor:
    """L2 norm per image, shaped to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def steepest_step(grad: Tensor, norm: str) -> Tensor:
    """Unit steepest-ascent direction for the norm: sign (linf) or normalised gradient (l2)."""
    if norm == "linf":
        return grad.sign()
    return grad / flat_norm(grad).clamp_min(_TINY)


def project(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Onto the eps-ball around x, then onto [0, 1].

    Clamping to the box after projecting keeps the ball: clamping only moves each coordinate of
    x_adv toward x's side of the box, which cannot grow |delta_i| for any norm.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = flat_norm(delta)
        delta = delta * torch.where(n > eps, eps / n.clamp_min(_TINY), torch.ones_like(n))
    return (x + delta).clamp(0.0, 1.0)


def random_in_ball(x: Tensor, eps: float, norm: str,
                   generator: torch.Generator | None = None) -> Tensor:
    """A uniform random start: uniform in the cube (linf), uniform in the ball (l2)."""
    dev = generator.device if generator is not None else x.device
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=dev, dtype=x.dtype)
        delta = (2 * u - 1) * eps
    else:
        g = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        d = g[0].numel()
        r = torch.rand(x.shape[0], generator=generator, device=dev, dtype=x.dtype) ** (1.0 / d)
        delta = g / flat_norm(g).clamp_min(_TINY) * (eps * r).view(-1, *([1] * (x.dim() - 1)))
    return project(x + delta.to(x.device), x, eps, norm)


def keep_better(best_x: Tensor, best_fooled: Tensor, best_loss: Tensor, x_new: Tensor,
                fooled_new: Tensor, loss_new: Tensor, index: Tensor | None = None) -> None:
    """In place, per image: prefer a candidate that fools the model, then the higher loss.

    With `index`, the candidates are for the images best_x[index] only (the ones re-attacked).
    """
    if index is not None:
        part = best_x[index], best_fooled[index], best_loss[index]
        keep_better(*part, x_new, fooled_new, loss_new)
        best_x[index], best_fooled[index], best_loss[index] = part
        return
    better = (fooled_new & ~best_fooled) | ((fooled_new == best_fooled) & (loss_new > best_loss))
    best_x[better] = x_new[better]
    best_fooled |= fooled_new
    best_loss[better] = loss_new[better]


@torch.no_grad()
def score(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(fooled, loss) per image: misclassified?, and cross-entropy."""
    logits = model(x)
    return logits.argmax(1) != y, loss_per_image(logits, y)
