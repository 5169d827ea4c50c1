"""The built-in architectures, each registered where it is built (timm's shape).

Each builder is a module function carrying ``@register_model``; its first alias is the
reference code's class name (``create_model("MNISTNetV1", complex=True)`` works). A builder
gives a real network or, with ``complex=True``, the same stack made of complex layers: complex
convolutions and linear layers, phases in place of normalisation, and no ReLU (the magnitude is
the nonlinearity).
"""

from __future__ import annotations

from torch import nn

from cvgr.models.net import Net, Normalize
from cvgr.models.registry import register_model
from cvgr.nn import ComplexConv2d, ComplexLinear, GroupSum, InputShaping, PhaseScale

__all__ = ["cifar_cnn", "cifar_cnn_shaped", "cifar_cnn_wide", "mnist_cnn", "mnist_cnn_groupsum",
           "mnist_cnn_hybrid", "mnist_mlp"]


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


def _net(name: str, shape: tuple[int, int, int], complex: bool, in_chans: int,
         layers: list[nn.Module]) -> Net:
    return Net(name, complex, (in_chans, *shape[1:]), layers)


# -- the built-in architectures, each registered where it is built ------------------------------

_MNIST = (1, 28, 28)
_CIFAR = (3, 32, 32)


@register_model(name="mnist-cnn", aliases=["MNISTNetV0"], input_shape=_MNIST,
                summary="conv32-pool-conv64-pool-fc128-fc10")
def mnist_cnn(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
              normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-cnn", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), p.conv(in_chans, 32), *p.act(), nn.AvgPool2d(2),
        p.conv(32, 64), *p.act(), nn.AvgPool2d(2), nn.Flatten(),
        p.fc(3136, 128), *p.act(), p.fc(128, num_classes)])


@register_model(name="mnist-cnn-groupsum", aliases=["MNISTNetV1"], input_shape=_MNIST,
                summary="conv16-gs2-pool-conv32-gs2-pool-fc128-fc10")
def mnist_cnn_groupsum(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
                       normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-cnn-groupsum", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), p.conv(in_chans, 16), *p.act(), GroupSum(2),
        nn.AvgPool2d(2),
        p.conv(8, 32), *p.act(), GroupSum(2), nn.AvgPool2d(2), nn.Flatten(),
        p.fc(784, 128), *p.act(), p.fc(128, num_classes)])


@register_model(name="mnist-cnn-hybrid", aliases=["MNISTNetV2"], input_shape=_MNIST,
                summary="conv64-gs8-pool-conv32-pool, real fc64-fc10")
def mnist_cnn_hybrid(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
                     normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-cnn-hybrid", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), p.conv(in_chans, 64), *p.act(), GroupSum(8),
        nn.AvgPool2d(2),
        p.conv(8, 32), *p.act(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(1568, 64), nn.ReLU(), nn.Linear(64, num_classes)])


@register_model(name="mnist-mlp", aliases=["MNISTMLP"], input_shape=_MNIST,
                summary="fc256-fc256-fc10")
def mnist_mlp(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
              normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-mlp", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), nn.Flatten(), p.fc(in_chans * 784, 256), *p.act(),
        p.fc(256, 256), *p.act(), p.fc(256, num_classes)])


def _cifar_layers(p: _Parts, c: int, k: int, widths: tuple[int, int, int], shaping: bool,
                  normalize: tuple | None) -> list[nn.Module]:
    mods = p.entry(shaping=shaping, normalize=normalize)
    cin = c
    for w in widths:
        mods += [p.conv(cin, w), nn.BatchNorm2d(w), *p.act(), nn.AvgPool2d(2)]
        cin = w
    return [*mods, nn.Flatten(), p.fc(cin * 16, 256), *p.act(), p.fc(256, k)]


@register_model(name="cifar-cnn", aliases=["CIFARNet1"], input_shape=_CIFAR,
                summary="conv32-conv64-conv128 (+BN, pool), fc256-fc10")
def cifar_cnn(complex: bool = False, num_classes: int = 10, in_chans: int = 3,
              normalize: tuple | None = None) -> Net:
    return _net("cifar-cnn", _CIFAR, complex, in_chans, _cifar_layers(
        _Parts(complex), in_chans, num_classes, (32, 64, 128), False, normalize))


@register_model(name="cifar-cnn-shaped", aliases=["CIFARNet1_PP"], input_shape=_CIFAR,
                summary="cifar-cnn with input shaping x - sin(2 pi x)/(2 pi)")
def cifar_cnn_shaped(complex: bool = False, num_classes: int = 10, in_chans: int = 3,
                     normalize: tuple | None = None) -> Net:
    return _net("cifar-cnn-shaped", _CIFAR, complex, in_chans, _cifar_layers(
        _Parts(complex), in_chans, num_classes, (32, 64, 128), True, normalize))


@register_model(name="cifar-cnn-wide", aliases=["CIFARNet2"], input_shape=_CIFAR,
                summary="conv64-conv128-conv256 (+BN, pool), fc256-fc10")
def cifar_cnn_wide(complex: bool = False, num_classes: int = 10, in_chans: int = 3,
                   normalize: tuple | None = None) -> Net:
    return _net("cifar-cnn-wide", _CIFAR, complex, in_chans, _cifar_layers(
        _Parts(complex), in_chans, num_classes, (64, 128, 256), False, normalize))
