"""How big a model is: its parameters, and the multiply-accumulates of one forward pass."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from cvgr.nn import ComplexConv2d, ComplexLinear

__all__ = ["count_macs", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Multiply-accumulates per image of conv and linear layers; a complex MAC counts as 4 real."""
    shape = tuple(input_shape or cast(tuple[int, ...], model.input_shape))
    total = 0

    def hook(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(mod, ComplexConv2d | nn.Conv2d):
            w = mod.weight_real if isinstance(mod, ComplexConv2d) else mod.weight
            per_out = w[0].numel()
            macs = out[0].numel() * per_out
            total += 4 * macs if isinstance(mod, ComplexConv2d) else macs
        elif isinstance(mod, ComplexLinear | nn.Linear):
            fin = mod.in_features
            macs = out[0].numel() * fin
            total += 4 * macs if isinstance(mod, ComplexLinear) else macs

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, *shape, dtype=p.dtype, device=p.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
