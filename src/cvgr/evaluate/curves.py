"""Batched accuracy and robustness curves (accuracy against eps) for any attack."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.attacks import check_eps, check_norm, check_options, get
from cvgr.attacks.common import check_count, eval_mode, loss_per_image
from cvgr.devices import model_device
from cvgr.errors import UserError

__all__ = ["MAX_EPS_POINTS", "accuracy", "attack_batched", "check_eps_list", "mean_loss",
           "parse_eps", "predict", "robustness_curve", "seeded_generator"]

AttackArg = str | Callable[..., Tensor]

MAX_EPS_POINTS = 1000
"""The most eps values one curve takes: more is a typo (a step too small), not a plan."""


def check_eps_list(eps_list: Sequence[float], norm: str = "linf", dim: int | None = None
                   ) -> list[float]:
    """At least one and at most MAX_EPS_POINTS eps values, each valid for the norm."""
    if len(eps_list) == 0:
        raise UserError("eps gave no values; e.g. 0:0.3:0.02", param="eps")
    if len(eps_list) > MAX_EPS_POINTS:
        raise UserError(f"eps gives {len(eps_list)} values, more than {MAX_EPS_POINTS}; "
                        "use a larger step", param="eps")
    return [check_eps(e, norm, dim) for e in eps_list]


def parse_eps(text: str) -> list[float]:
    """'0:0.3:0.02' (inclusive range), '0.1,0.2' or '0.1' -> a list of eps values."""
    try:
        if ":" in text:
            parts = [float(t) for t in text.split(":")]
            if len(parts) != 3 or not all(map(math.isfinite, parts)) or parts[2] <= 0 \
                    or parts[1] < parts[0]:
                raise ValueError
            start, stop, step = parts
            n = int(round((stop - start) / step))
            if n + 1 > MAX_EPS_POINTS:  # refuse before building a huge list
                raise UserError(f"eps {text!r} gives {n + 1} values, more than {MAX_EPS_POINTS};"
                                " use a larger step", param="eps")
            # 15 significant digits drop float noise (0.30000000000000004) at any scale;
            # rounding to a fixed number of decimals would merge a grid of tiny steps into 0
            vals = [float(f"{start + i * step:.15g}") for i in range(n + 1)]
            vals = [v for v in vals if v <= stop + step * 1e-6]
            if len(set(vals)) < len(vals):
                raise UserError(f"eps {text!r}: the step is too small to tell its values apart "
                                "at float precision; use a larger step", param="eps")
            return vals
        return [float(t) for t in text.split(",") if t.strip()]
    except UserError:
        raise
    except (ValueError, OverflowError):
        raise UserError(f"cannot read eps {text!r}; write START:STOP:STEP (e.g. 0:0.3:0.02), "
                        "a comma list (0.1,0.2) or one number", param="eps") from None


def seeded_generator(model: nn.Module, seed: int) -> torch.Generator:
    """A generator on the model's device, so random starts and NES probes are drawn there."""
    return torch.Generator(device=model_device(model)).manual_seed(int(seed))


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """(labels, logits) for x, batch by batch on the model's device; results on x's device."""
    batch_size = check_count(batch_size, "batch_size")
    dev = model_device(model)
    labels, logits = [], []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size].to(dev))
            logits.append(out.to(x.device))
            labels.append(out.argmax(1).to(x.device))
    if not labels:
        return torch.zeros(0, dtype=torch.long, device=x.device), torch.zeros(0, device=x.device)
    return torch.cat(labels), torch.cat(logits)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Fraction of x classified as y (0.0 for no images)."""
    if len(x) == 0:
        return 0.0
    return (predict(model, x, batch_size)[0] == y.to(x.device)).float().mean().item()


def mean_loss(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Mean cross-entropy of the model on (x, y)."""
    logits = predict(model, x, batch_size)[1]
    return loss_per_image(logits, y.to(logits.device)).mean().item() if len(x) else 0.0


def _resolve(attack: AttackArg) -> tuple[str, Callable[..., Tensor]]:
    if isinstance(attack, str):
        return attack.lower(), get(attack)
    return getattr(attack, "__name__", type(attack).__name__), attack


def attack_batched(model: nn.Module, x: Tensor, y: Tensor, attack: AttackArg, eps: float,
                   batch_size: int = 256, generator: torch.Generator | None = None,
                   bar: _progress.Bar | None = None, **kw: Any) -> Tensor:
    """Run `attack` batch by batch on the model's device; adversarial images on x's device.

    `generator` goes to the built-in attacks (every one takes it); a callable of yours is
    called as fn(model, x, y, eps, **kw) and seeds itself.
    """
    _, fn = _resolve(attack)
    batch_size = check_count(batch_size, "batch_size")
    if isinstance(attack, str):
        kw = {**kw, "generator": generator}
    dev = model_device(model)
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
        out.append(fn(model, xb, yb, eps, **kw).to(x.device))
        if bar is not None:
            bar.update(len(xb))
    return torch.cat(out) if out else x.clone()


def robustness_curve(model: nn.Module, x: Tensor, y: Tensor, attack: AttackArg,
                     eps_list: Sequence[float], batch_size: int = 256, *, seed: int = 0,
                     progress: bool = True, return_examples: bool = False,
                     **kw: Any) -> dict[str, Any] | tuple[dict[str, Any], list[Tensor]]:
    """Accuracy and mean cross-entropy of `model` under `attack` at every eps in `eps_list`.

    `kw` goes to the attack (steps, norm, restarts, queries, ...). Returns a JSON-ready dict
    {"attack", "options", "n_images", "eps", "accuracy", "loss"}; with `return_examples` also the
    adversarial images per eps (a list of tensors shaped like x).
    """
    name, _ = _resolve(attack)
    kw = check_options(**kw)
    norm = check_norm(kw.get("norm", "linf"))  # type: ignore[arg-type]
    eps_list = check_eps_list(eps_list, norm, x[0].numel() if len(x) else None)
    batch_size = check_count(batch_size, "batch_size")
    gen = seeded_generator(model, seed)
    accs, losses, examples = [], [], []
    bar = _progress.bar(total=len(x) * len(eps_list), desc=f"{name} curve", unit="img",
                        progress=progress)
    try:
        for e in eps_list:
            bar.set_postfix(eps=f"{e:g}")
            xa = attack_batched(model, x, y, attack, e, batch_size, generator=gen, bar=bar, **kw)
            accs.append(accuracy(model, xa, y, batch_size))
            losses.append(mean_loss(model, xa, y, batch_size))
            if return_examples:
                examples.append(xa)
    finally:
        bar.close()
    opts = {"norm": norm, **{k: v for k, v in kw.items() if _plain(v)}}
    curve = {"attack": name, "options": opts,
             "n_images": len(x), "eps": eps_list, "accuracy": accs, "loss": losses,
             "seed": int(seed)}
    return (curve, examples) if return_examples else curve


def _plain(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None))
