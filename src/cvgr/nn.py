"""Phase-to-magnitude complex layers (DESIGN.md section 2).

Each real input entry is read as a phase, x -> e^{ix}; the layer applies a complex affine map
z = W e^{ix} + b and returns |z|. The magnitude is the nonlinearity, so complex layers are
stacked with no other activation and each layer's magnitudes become the next layer's phases.

Speed: the complex product is done as ONE real matmul/conv on the stacked input [cos x; sin x]
with the block weight [[W_R, -W_I], [W_I, W_R]], so a complex layer costs one real kernel with
4x the MACs of a real layer of the same shape, and autograd's first and second derivatives are
those of ordinary real ops.

``second_order`` selects how the layer behaves under double backpropagation:

* ``"exact"``: plain autograd, every derivative exact.
* ``"reference"``: the published code's truncated second pass. First derivatives are
  unchanged, but when the input-gradient is itself differentiated, the unit phasor z/|z| and
  the phasor of the input, e^{ix}, are held constant; only the upstream gradient and the
  layer's own weights carry derivatives.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MAGNITUDE_EPS",
    "ComplexConv2d",
    "ComplexLinear",
    "GroupSum",
    "InputShaping",
    "PhaseScale",
    "group_sum",
    "magnitude",
    "second_order_mode",
]

# Added to |z|^2 under the square root. It keeps |z| smooth at z = 0 (finite first and second
# derivatives, no NaN in double backprop) and moves |z| by at most 1e-6 in absolute terms.
MAGNITUDE_EPS = 1e-12

SECOND_ORDER_MODES = ("exact", "reference")


def magnitude(z_real: Tensor, z_imag: Tensor, eps: float = MAGNITUDE_EPS) -> Tensor:
    """Smooth |z|: sqrt(zR^2 + zI^2 + eps). Finite value, gradient and Hessian at z = 0."""
    return torch.sqrt(z_real * z_real + z_imag * z_imag + eps)


class _PhasorConst(torch.autograd.Function):
    """x -> (cos x, sin x) whose backward treats cos/sin as constants when differentiated again."""

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, Tensor]:
        c, s = torch.cos(x), torch.sin(x)
        ctx.save_for_backward(c, s)
        return c, s

    @staticmethod
    def backward(ctx, g_c: Tensor, g_s: Tensor) -> Tensor:
        c, s = ctx.saved_tensors
        return g_s * c - g_c * s


class _MagnitudeConst(torch.autograd.Function):
    """(zR, zI) -> |z| whose backward uses z/|z| as a constant when differentiated again."""

    @staticmethod
    def forward(ctx, z_real: Tensor, z_imag: Tensor, eps: float) -> Tensor:
        g = torch.sqrt(z_real * z_real + z_imag * z_imag + eps)
        ctx.save_for_backward(z_real / g, z_imag / g)
        return g

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        u_r, u_i = ctx.saved_tensors
        return grad * u_r, grad * u_i, None


def _block_weight(w_real: Tensor, w_imag: Tensor) -> Tensor:
    """[[W_R, -W_I], [W_I, W_R]] along the (out, in) dims, so [zR; zI] = B [cos; sin]."""
    top = torch.cat([w_real, -w_imag], dim=1)
    bottom = torch.cat([w_imag, w_real], dim=1)
    return torch.cat([top, bottom], dim=0)


class _ComplexBase(nn.Module):
    """Shared parameters, initialisation and phase/magnitude plumbing of the complex layers."""

    weight_real: nn.Parameter
    weight_imag: nn.Parameter
    bias_real: nn.Parameter | None
    bias_imag: nn.Parameter | None

    def _make_params(self, weight_shape: tuple[int, ...], out: int, bias: bool) -> None:
        self.weight_real = nn.Parameter(torch.empty(weight_shape))
        self.weight_imag = nn.Parameter(torch.empty(weight_shape))
        if bias:
            self.bias_real = nn.Parameter(torch.empty(out))
            self.bias_imag = nn.Parameter(torch.empty(out))
        else:
            self.register_parameter("bias_real", None)
            self.register_parameter("bias_imag", None)
        self.second_order = "exact"
        self.reset_parameters()

    @property
    def fan_in(self) -> int:
        return self.weight_real[0].numel()

    def reset_parameters(self) -> None:
        """Uniform random phase in [0, 2pi) and modulus 1/sqrt(fan_in), for weights and bias."""
        modulus = 1.0 / math.sqrt(self.fan_in)
        pairs = [(self.weight_real, self.weight_imag)]
        if self.bias_real is not None:
            pairs.append((self.bias_real, self.bias_imag))
        with torch.no_grad():
            for re, im in pairs:
                theta = torch.rand_like(re) * (2 * math.pi)
                re.copy_(modulus * torch.cos(theta))
                im.copy_(modulus * torch.sin(theta))

    def _phasor(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.second_order == "reference":
            return _PhasorConst.apply(x)
        return torch.cos(x), torch.sin(x)

    def _magnitude(self, z: Tensor, dim: int) -> Tensor:
        z_real, z_imag = z.chunk(2, dim=dim)
        if self.second_order == "reference":
            return _MagnitudeConst.apply(z_real, z_imag, MAGNITUDE_EPS)
        return magnitude(z_real, z_imag)

    def _stacked_bias(self) -> Tensor | None:
        if self.bias_real is None:
            return None
        return torch.cat([self.bias_real, self.bias_imag])

    def complex_preactivation(self, x: Tensor) -> Tensor:
        """z = W e^{ix} + b as a complex tensor (for tests and inspection, not the fast path)."""
        with torch.no_grad():
            mode, self.second_order = self.second_order, "exact"
            try:
                z = self._affine(torch.cat(self._phasor(x), dim=self._channel_dim))
            finally:
                self.second_order = mode
        z_real, z_imag = z.chunk(2, dim=self._channel_dim)
        return torch.complex(z_real, z_imag)

    _channel_dim = 1

    def _affine(self, stacked: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        stacked = torch.cat(self._phasor(x), dim=self._channel_dim)
        return self._magnitude(self._affine(stacked), dim=self._channel_dim)


class ComplexLinear(_ComplexBase):
    """|W e^{ix} + b| for x of shape (..., in_features); parameters shaped like nn.Linear's."""

    _channel_dim = -1

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._make_params((out_features, in_features), out_features, bias)

    def _affine(self, stacked: Tensor) -> Tensor:
        w = _block_weight(self.weight_real, self.weight_imag)
        return F.linear(stacked, w, self._stacked_bias())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_real is not None}"
        )


class ComplexConv2d(_ComplexBase):
    """|W * e^{ix} + b| with * a 2-D convolution; parameters shaped like nn.Conv2d's."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = k, stride, padding
        self._make_params((out_channels, in_channels, *k), out_channels, bias)

    def _affine(self, stacked: Tensor) -> Tensor:
        w = _block_weight(self.weight_real, self.weight_imag)
        return F.conv2d(stacked, w, self._stacked_bias(), self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias_real is not None}"
        )


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


@contextmanager
def second_order_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Temporarily set how every complex layer in `model` is differentiated a second time."""
    if mode not in SECOND_ORDER_MODES:
        raise ValueError(f"unknown second-order mode {mode!r}; choose from {SECOND_ORDER_MODES}")
    layers = [m for m in model.modules() if isinstance(m, _ComplexBase)]
    saved = [m.second_order for m in layers]
    try:
        for m in layers:
            m.second_order = mode
        yield model
    finally:
        for m, s in zip(layers, saved, strict=True):
            m.second_order = s
