"""Phase-to-magnitude complex layers (DESIGN.md section 2).

Each real input entry is read as a phase, x -> e^{ix}; the layer applies a complex affine map
z = W e^{ix} + b and returns |z|. The magnitude is the nonlinearity, so complex layers are
stacked with no other activation and each layer's magnitudes become the next layer's phases.

Speed: the complex product is done as ONE real matmul/conv on the stacked input [cos x; sin x]
with the block weight [[W_R, -W_I], [W_I, W_R]], so a complex layer costs one real kernel with
4x the MACs of a real layer of the same shape. The phasor and the magnitude are autograd
Functions with hand-derived first AND second derivatives (checked by gradcheck/gradgradcheck).

``second_order`` selects how the layer behaves under double backpropagation:

* ``"exact"``: every derivative exact.
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
from torch.autograd.function import once_differentiable

__all__ = [
    "MAGNITUDE_FLOOR",
    "ComplexConv2d",
    "ComplexLinear",
    "GroupSum",
    "InputShaping",
    "PhaseScale",
    "group_sum",
    "second_order_mode",
]

# Below this modulus the unit phasor z/|z| is taken as 0 and 1/|z| as 1/MAGNITUDE_FLOOR: |z| stays
# exact, its gradient at z = 0 is the subgradient 0 and its second derivative stays finite.
MAGNITUDE_FLOOR = 1e-6

SECOND_ORDER_MODES = ("exact", "reference")


def _pair_axis(t: Tensor, d: int) -> Tensor:
    """View (.., 2C, ..) as (.., 2, C, ..): real and imaginary halves along a new axis d."""
    return t.unflatten(d, (2, t.shape[d] // 2))


# The two nonlinear steps of a complex layer are autograd Functions whose backward passes are
# themselves Functions with hand-derived backward passes. Compared with autograd's tape of
# elementwise ops this halves the passes over the activations in double backpropagation (the
# GR hot path), and gives one switch, `const`, for the reference code's truncated second pass.

class _Phasor(torch.autograd.Function):
    """x -> [cos x; sin x] stacked along dim d (C -> 2C channels)."""

    @staticmethod
    def forward(ctx, x: Tensor, d: int, const: bool) -> Tensor:
        p = x.new_empty(*x.shape[:d], 2, *x.shape[d:])
        torch.cos(x, out=p.select(d, 0))
        torch.sin(x, out=p.select(d, 1))
        ctx.save_for_backward(x, p)
        ctx.d, ctx.const = d, const
        return p.flatten(d, d + 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        x, p = ctx.saved_tensors
        return _PhasorBackward.apply(grad, x, p.detach(), ctx.d, ctx.const), None, None


class _PhasorBackward(torch.autograd.Function):
    """grad -> grad_sin * cos x - grad_cos * sin x, differentiable in grad and (unless const) x."""

    @staticmethod
    def forward(ctx, grad: Tensor, x: Tensor, p: Tensor, d: int, const: bool) -> Tensor:
        g2 = _pair_axis(grad, d)
        ctx.save_for_backward(g2, p)
        ctx.d, ctx.const = d, const
        return g2.select(d, 1) * p.select(d, 0) - g2.select(d, 0) * p.select(d, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, b: Tensor) -> tuple[Tensor, Tensor | None, None, None, None]:
        g2, p = ctx.saved_tensors
        d = ctx.d
        d_phasor = torch.stack([-p.select(d, 1), p.select(d, 0)], dim=d)  # d e^{ix} / dx
        d_grad = (b.unsqueeze(d) * d_phasor).flatten(d, d + 1)
        d_x = None if ctx.const else -b * (g2 * p).sum(d)
        return d_grad, d_x, None, None, None


class _Magnitude(torch.autograd.Function):
    """[zR; zI] stacked along dim d -> |z| (2C -> C channels)."""

    @staticmethod
    def forward(ctx, z: Tensor, d: int, const: bool) -> Tensor:
        z2 = _pair_axis(z, d)
        g = torch.hypot(z2.select(d, 0), z2.select(d, 1))
        inv = g.clamp_min(MAGNITUDE_FLOOR).reciprocal_().unsqueeze(d)
        u = z2 * inv
        u.masked_fill_(g.unsqueeze(d) < MAGNITUDE_FLOOR, 0.0)
        ctx.save_for_backward(z, u, inv)
        ctx.d, ctx.const = d, const
        return g

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        z, u, inv = ctx.saved_tensors
        return _MagnitudeBackward.apply(grad, z, u, inv, ctx.d, ctx.const), None, None


class _MagnitudeBackward(torch.autograd.Function):
    """grad -> grad * z/|z|, differentiable in grad and (unless const) z; du/dz = (I - uu^T)/|z|."""

    @staticmethod
    def forward(ctx, grad: Tensor, z: Tensor, u: Tensor, inv: Tensor, d: int,
                const: bool) -> Tensor:
        ctx.save_for_backward(grad, u, inv)
        ctx.d, ctx.const = d, const
        return (grad.unsqueeze(d) * u).flatten(d, d + 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, a: Tensor) -> tuple[Tensor, Tensor | None, None, None, None, None]:
        grad, u, inv = ctx.saved_tensors
        d = ctx.d
        a2 = _pair_axis(a, d)
        a_dot_u = (a2 * u).sum(d, keepdim=True)
        d_grad = a_dot_u.squeeze(d)
        d_z = None
        if not ctx.const:
            d_z = ((a2 - u * a_dot_u) * (grad.unsqueeze(d) * inv)).flatten(d, d + 1)
        return d_grad, d_z, None, None, None, None


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

    def _stacked_bias(self) -> Tensor | None:
        if self.bias_real is None:
            return None
        return torch.cat([self.bias_real, self.bias_imag])

    def complex_preactivation(self, x: Tensor) -> Tensor:
        """z = W e^{ix} + b as a complex tensor (for tests and inspection, not the fast path)."""
        with torch.no_grad():
            d = self._channel_dim % x.dim()
            z = self._affine(_Phasor.apply(x, d, False))
        z_real, z_imag = z.chunk(2, dim=d)
        return torch.complex(z_real, z_imag)

    _channel_dim = 1

    def _affine(self, stacked: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        d = self._channel_dim % x.dim()
        const = self.second_order == "reference"
        return _Magnitude.apply(self._affine(_Phasor.apply(x, d, const)), d, const)


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
