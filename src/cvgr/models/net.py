"""The module a built-in architecture is: an input stage, then a plain stack of layers.

`Net` checks the image shape it is given, so a model fed the wrong dataset fails with a message
that names both shapes; `Normalize` standardises images inside a real model, so that attacks
still see images in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Net", "Normalize"]


class Normalize(nn.Module):
    """Per-channel (x - mean) / std inside the model, so attacks still see [0, 1] images."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Net(nn.Module):
    """A registered architecture: input stage, then a plain stack of layers."""

    def __init__(self, arch: str, complex: bool, input_shape: tuple[int, int, int],
                 layers: list[nn.Module]) -> None:
        super().__init__()
        self.arch, self.complex, self.input_shape = arch, complex, input_shape
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.arch} expects images shaped (N, {', '.join(map(str, self.input_shape))}),"
                f" got {tuple(x.shape)}"
            )
        return self.layers(x)
