"""Small modules around the complex layers: images to phases, the optional input shaping,
and the group sum that keeps complex widths and MACs comparable to real nets."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GroupSum", "InputShaping", "PhaseScale", "group_sum"]


def group_sum(x: Tensor, groups: int) -> Tensor:
    """Split the C channels (dim 1) into `groups` equal consecutive groups and add them."""
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"group_sum: {c} channels do not split into {groups} equal groups")
    return x.reshape(x.shape[0], groups, c // groups, *x.shape[2:]).sum(dim=1)


class GroupSum(nn.Module):
    """Module form of :func:`group_sum`; keeps CVNN widths and MACs comparable to RVNNs."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return group_sum(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class PhaseScale(nn.Module):
    """Maps [0, 1] images to phases in [0, scale] (pi for complex nets)."""

    def __init__(self, scale: float = math.pi) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


class InputShaping(nn.Module):
    """s(x) = x - sin(2 pi x) / (2 pi): flattens the map near 0 and 1 (optional, CIFAR nets)."""

    def forward(self, x: Tensor) -> Tensor:
        return x - torch.sin(2 * math.pi * x) / (2 * math.pi)
