"""A gradient-masked wrapper shared by the masking and AutoAttack tests."""

from __future__ import annotations

import torch
from torch import nn


class _ZeroGrad(torch.autograd.Function):
    """Identity forward, zero backward: the crudest gradient masking."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class Masked(nn.Module):
    """`inner` with its input gradient zeroed: PGD sees no gradient, the outputs are unchanged."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(_ZeroGrad.apply(x))
