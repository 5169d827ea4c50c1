"""Registry of the paper's architectures, each buildable as a real or a complex network.

Every model takes images in [0, 1] shaped (N, C, H, W) and returns logits (N, classes), so any
attack library can attack it unchanged. Names are descriptive; the reference code's class
names are aliases (``build("MNISTNetV1", complex=True)`` works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cvgr.nn import ComplexConv2d, ComplexLinear, GroupSum, InputShaping, PhaseScale

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "Net",
    "Normalize",
    "build",
    "count_macs",
    "count_parameters",
    "resolve",
]


class Normalize(nn.Module):
    """Per-channel (x - mean) / std inside the model, so attacks still see [0, 1] images."""

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


# -- small constructors that hide the real/complex choice -------------------------------------

class _Parts:
    def __init__(self, complex: bool) -> None:
        self.complex = complex

    def conv(self, cin: int, cout: int) -> nn.Module:
        if self.complex:
            return ComplexConv2d(cin, cout, 3, padding=1)
        return nn.Conv2d(cin, cout, 3, padding=1)

    def fc(self, fin: int, fout: int) -> nn.Module:
        return ComplexLinear(fin, fout) if self.complex else nn.Linear(fin, fout)

    def act(self) -> list[nn.Module]:
        """ReLU for a real net; nothing for a complex one (the magnitude is the nonlinearity)."""
        return [] if self.complex else [nn.ReLU()]

    def entry(self, shaping: bool = False, normalize: tuple | None = None) -> list[nn.Module]:
        """Input stage: optional shaping; then phases x*pi (complex) or normalisation (real)."""
        mods: list[nn.Module] = [InputShaping()] if shaping else []
        if self.complex:
            mods.append(PhaseScale())
        elif normalize is not None:
            mods.append(Normalize(*normalize))
        return mods


def _mnist_cnn(p: _Parts, **_: object) -> list[nn.Module]:
    return [*p.entry(), p.conv(1, 32), *p.act(), nn.AvgPool2d(2),
            p.conv(32, 64), *p.act(), nn.AvgPool2d(2), nn.Flatten(),
            p.fc(3136, 128), *p.act(), p.fc(128, 10)]


def _mnist_cnn_gs(p: _Parts, **_: object) -> list[nn.Module]:
    return [*p.entry(), p.conv(1, 16), *p.act(), GroupSum(2), nn.AvgPool2d(2),
            p.conv(8, 32), *p.act(), GroupSum(2), nn.AvgPool2d(2), nn.Flatten(),
            p.fc(784, 128), *p.act(), p.fc(128, 10)]


def _mnist_cnn_hybrid(p: _Parts, **_: object) -> list[nn.Module]:
    return [*p.entry(), p.conv(1, 64), *p.act(), GroupSum(8), nn.AvgPool2d(2),
            p.conv(8, 32), *p.act(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(1568, 64), nn.ReLU(), nn.Linear(64, 10)]


def _mnist_mlp(p: _Parts, **_: object) -> list[nn.Module]:
    return [*p.entry(), nn.Flatten(), p.fc(784, 256), *p.act(), p.fc(256, 256), *p.act(),
            p.fc(256, 10)]


def _cifar_cnn(widths: tuple[int, int, int], shaping: bool) -> Callable[..., list[nn.Module]]:
    def make(p: _Parts, normalize: tuple | None = None, **_: object) -> list[nn.Module]:
        mods = p.entry(shaping=shaping, normalize=normalize)
        cin = 3
        for w in widths:
            mods += [p.conv(cin, w), nn.BatchNorm2d(w), *p.act(), nn.AvgPool2d(2)]
            cin = w
        return [*mods, nn.Flatten(), p.fc(cin * 16, 256), *p.act(), p.fc(256, 10)]

    return make


@dataclass(frozen=True)
class ArchSpec:
    name: str
    reference_name: str
    input_shape: tuple[int, int, int]
    summary: str
    make: Callable[..., list[nn.Module]] = field(repr=False)


ARCHITECTURES: dict[str, ArchSpec] = {
    s.name: s
    for s in [
        ArchSpec("mnist-cnn", "MNISTNetV0", (1, 28, 28),
                 "conv32-pool-conv64-pool-fc128-fc10", _mnist_cnn),
        ArchSpec("mnist-cnn-groupsum", "MNISTNetV1", (1, 28, 28),
                 "conv16-gs2-pool-conv32-gs2-pool-fc128-fc10", _mnist_cnn_gs),
        ArchSpec("mnist-cnn-hybrid", "MNISTNetV2", (1, 28, 28),
                 "conv64-gs8-pool-conv32-pool, real fc64-fc10", _mnist_cnn_hybrid),
        ArchSpec("mnist-mlp", "MNISTMLP", (1, 28, 28), "fc256-fc256-fc10", _mnist_mlp),
        ArchSpec("cifar-cnn", "CIFARNet1", (3, 32, 32),
                 "conv32-conv64-conv128 (+BN, pool), fc256-fc10",
                 _cifar_cnn((32, 64, 128), False)),
        ArchSpec("cifar-cnn-shaped", "CIFARNet1_PP", (3, 32, 32),
                 "cifar-cnn with input shaping x - sin(2 pi x)/(2 pi)",
                 _cifar_cnn((32, 64, 128), True)),
        ArchSpec("cifar-cnn-wide", "CIFARNet2", (3, 32, 32),
                 "conv64-conv128-conv256 (+BN, pool), fc256-fc10",
                 _cifar_cnn((64, 128, 256), False)),
    ]
}

_ALIASES = {k.lower(): k for k in ARCHITECTURES} | {
    s.reference_name.lower(): s.name for s in ARCHITECTURES.values()
}


def resolve(name: str) -> ArchSpec:
    """Look an architecture up by its name or its reference alias (case-insensitive)."""
    try:
        return ARCHITECTURES[_ALIASES[name.lower()]]
    except KeyError:
        known = ", ".join(f"{s.name} ({s.reference_name})" for s in ARCHITECTURES.values())
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None


def build(name: str, complex: bool = False, normalize: tuple | None = None) -> Net:
    """Build `name` as a real or complex network.

    `normalize` = (mean, std) per channel is applied inside real networks only (the paper
    normalises CIFAR-10 for real nets; complex nets read raw [0, 1] images as phases).
    """
    spec = resolve(name)
    layers = spec.make(_Parts(complex), normalize=normalize)
    return Net(spec.name, complex, spec.input_shape, layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Multiply-accumulates per image of conv and linear layers; a complex MAC counts as 4 real."""
    shape = input_shape or model.input_shape  # type: ignore[attr-defined]
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
