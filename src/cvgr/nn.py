"""Phase-to-magnitude complex layers (docs/method.md section 2).

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
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from cvgr.names import SecondOrder, is_one_of

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


def _grouped(t: Tensor, d: int, groups: int) -> Tensor:
    """View (.., G*2*c, ..) as (.., G, 2, c, ..): per group, real and imaginary halves."""
    return t.unflatten(d, (groups, 2, t.shape[d] // (2 * groups)))


def _split(t: Tensor, d: int, groups: int) -> Tensor:
    """View (.., G*c, ..) as (.., G, 1, c, ..): broadcasts against a :func:`_grouped` tensor."""
    return t.unflatten(d, (groups, 1, t.shape[d] // groups))


def _unit_scale(g: Tensor) -> tuple[Tensor, Tensor]:
    """(1/|z| with 0 below the floor, 1/max(|z|, floor)): u = z * first, and the 1/|z| of du/dz."""
    inv = g.clamp_min(MAGNITUDE_FLOOR).reciprocal()
    return torch.where(g < MAGNITUDE_FLOOR, 0.0, inv), inv


# The two nonlinear steps of a complex layer are autograd Functions whose backward passes are
# themselves Functions with hand-derived backward passes. Compared with autograd's tape of
# elementwise ops this halves the passes over the activations in double backpropagation (the
# GR hot path), and gives one switch, `const`, for the reference code's truncated second pass.
#
# They follow torch.func's rules (forward without ctx, `setup_context`, only out-of-place ops,
# `generate_vmap_rule`), so torch.func.grad / vmap / jacrev, torch.compile(fullgraph=True) and
# torch.export all see through them. The channels of a stacked tensor are laid out per group
# ``[re_0; im_0; re_1; im_1; ...]`` (one group unless a grouped convolution), dim ``d``.

class _Phasor(torch.autograd.Function):
    """x (C channels) -> per group [cos x_g; sin x_g] (2C channels) along dim d."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, d: int, groups: int, const: bool) -> Tensor:
        xg = x.unflatten(d, (groups, x.shape[d] // groups))
        return torch.stack([torch.cos(xg), torch.sin(xg)], dim=d + 1).flatten(d, d + 2)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, d, groups, const = inputs
        ctx.save_for_backward(x, output)
        ctx.d, ctx.groups, ctx.const = d, groups, const

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        x, p = ctx.saved_tensors
        return _PhasorBackward.apply(grad, x, p.detach(), ctx.d, ctx.groups, ctx.const), \
            None, None, None


class _PhasorBackward(torch.autograd.Function):
    """grad -> grad_sin * cos x - grad_cos * sin x, differentiable in grad and (unless const) x."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: Tensor, x: Tensor, p: Tensor, d: int, groups: int, const: bool) -> Tensor:
        g2, p2 = _grouped(grad, d, groups), _grouped(p, d, groups)
        out = g2.select(d + 1, 1) * p2.select(d + 1, 0) - g2.select(d + 1, 0) * p2.select(d + 1, 1)
        return out.flatten(d, d + 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        grad, _x, p, d, groups, const = inputs
        ctx.save_for_backward(grad, p)
        ctx.d, ctx.groups, ctx.const = d, groups, const

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, b: Tensor) -> tuple[Tensor, Tensor | None, None, None, None, None]:
        grad, p = ctx.saved_tensors
        d, groups = ctx.d, ctx.groups
        p2 = _grouped(p, d, groups)
        b2 = _split(b, d, groups)
        # d e^{ix} / dx = [-sin x; cos x]
        d_phasor = torch.stack([-p2.select(d + 1, 1), p2.select(d + 1, 0)], dim=d + 1)
        d_grad = (b2 * d_phasor).flatten(d, d + 2)
        d_x = None
        if not ctx.const:
            d_x = (-b2 * (_grouped(grad, d, groups) * p2).sum(d + 1, keepdim=True))
            d_x = d_x.flatten(d, d + 2)
        return d_grad, d_x, None, None, None, None


class _Magnitude(torch.autograd.Function):
    """Per group [zR; zI] (2C channels) along dim d -> |z| (C channels)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor, d: int, groups: int, const: bool) -> Tensor:
        z2 = _grouped(z, d, groups)
        return torch.hypot(z2.select(d + 1, 0), z2.select(d + 1, 1)).flatten(d, d + 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        z, d, groups, const = inputs
        ctx.save_for_backward(z, output)
        ctx.d, ctx.groups, ctx.const = d, groups, const

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        z, g = ctx.saved_tensors
        return _MagnitudeBackward.apply(grad, z, g.detach(), ctx.d, ctx.groups, ctx.const), \
            None, None, None


class _MagnitudeBackward(torch.autograd.Function):
    """grad -> grad * z/|z|, differentiable in grad and (unless const) z; du/dz = (I - uu^T)/|z|."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: Tensor, z: Tensor, g: Tensor, d: int, groups: int, const: bool) -> Tensor:
        scale, _ = _unit_scale(g)
        return (_grouped(z, d, groups) * _split(grad * scale, d, groups)).flatten(d, d + 2)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        grad, z, g, d, groups, const = inputs
        ctx.save_for_backward(grad, z, g)
        ctx.d, ctx.groups, ctx.const = d, groups, const

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, a: Tensor) -> tuple[Tensor, Tensor | None, None, None, None, None]:
        grad, z, g = ctx.saved_tensors
        d, groups = ctx.d, ctx.groups
        scale, inv = _unit_scale(g)
        u = _grouped(z, d, groups) * _split(scale, d, groups)
        a2 = _grouped(a, d, groups)
        a_dot_u = (a2 * u).sum(d + 1, keepdim=True)
        d_grad = a_dot_u.flatten(d, d + 2)
        d_z = None
        if not ctx.const:
            d_z = ((a2 - u * a_dot_u) * _split(grad * inv, d, groups)).flatten(d, d + 2)
        return d_grad, d_z, None, None, None, None


def _block_weight(w_real: Tensor, w_imag: Tensor, groups: int = 1) -> Tensor:
    """Per group [[W_R, -W_I], [W_I, W_R]] along the (out, in) dims: [zR; zI] = B [cos; sin]."""
    wr, wi = w_real.unflatten(0, (groups, -1)), w_imag.unflatten(0, (groups, -1))
    top = torch.cat([wr, -wi], dim=2)
    bottom = torch.cat([wi, wr], dim=2)
    return torch.cat([top, bottom], dim=1).flatten(0, 1)


def _stacked_bias(b_real: Tensor | None, b_imag: Tensor | None, groups: int = 1) -> Tensor | None:
    if b_real is None or b_imag is None:
        return None
    return torch.stack([b_real.unflatten(0, (groups, -1)), b_imag.unflatten(0, (groups, -1))],
                       dim=1).flatten()


class _ComplexBase(nn.Module):
    """Shared parameters, initialisation and phase/magnitude plumbing of the complex layers."""

    weight_real: nn.Parameter
    weight_imag: nn.Parameter
    bias_real: nn.Parameter | None
    bias_imag: nn.Parameter | None
    second_order: str
    _groups: int = 1

    def _make_params(self, weight_shape: tuple[int, ...], out: int, bias: bool,
                     factory: dict[str, Any]) -> None:
        self.weight_real = nn.Parameter(torch.empty(weight_shape, **factory))
        self.weight_imag = nn.Parameter(torch.empty(weight_shape, **factory))
        if bias:
            self.bias_real = nn.Parameter(torch.empty(out, **factory))
            self.bias_imag = nn.Parameter(torch.empty(out, **factory))
        else:
            self.register_parameter("bias_real", None)
            self.register_parameter("bias_imag", None)
        self.second_order = str(SecondOrder.EXACT)
        self.reset_parameters()

    @property
    def fan_in(self) -> int:
        return self.weight_real[0].numel()

    def reset_parameters(self) -> None:
        """Uniform random phase in [0, 2pi) and modulus 1/sqrt(fan_in), for weights and bias."""
        modulus = 1.0 / math.sqrt(self.fan_in)
        pairs = [(self.weight_real, self.weight_imag)]
        if self.bias_real is not None and self.bias_imag is not None:
            pairs.append((self.bias_real, self.bias_imag))
        with torch.no_grad():
            for re, im in pairs:
                theta = torch.rand_like(re) * (2 * math.pi)
                re.copy_(modulus * torch.cos(theta))
                im.copy_(modulus * torch.sin(theta))

    def _channel_dim(self, x: Tensor) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _affine(self, stacked: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def complex_preactivation(self, x: Tensor) -> Tensor:
        """z = W e^{ix} + b as a complex tensor (for tests and inspection, not the fast path)."""
        with torch.no_grad():
            d = self._channel_dim(x)
            z = _grouped(self._affine(_Phasor.apply(x, d, self._groups, False)), d, self._groups)
        return torch.complex(z.select(d + 1, 0), z.select(d + 1, 1)).flatten(d, d + 1)

    def forward(self, x: Tensor) -> Tensor:
        d = self._channel_dim(x)
        const = self.second_order == SecondOrder.REFERENCE
        stacked = _Phasor.apply(x, d, self._groups, const)
        return _Magnitude.apply(self._affine(stacked), d, self._groups, const)


class ComplexLinear(_ComplexBase):
    r"""Phase-to-magnitude linear layer: :math:`y = |W e^{ix} + b|`, :math:`W, b` complex.

    Each real input entry is read as a phase; the output magnitudes are real, so layers stack
    with no other activation. Computed as one real ``linear`` with 4x the MACs of an
    ``nn.Linear`` of the same shape.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: if ``False``, the layer has no complex bias. Default: ``True``.
        device, dtype: where and in which real floating dtype the parameters are created,
            as for ``nn.Linear``.

    Shape:
        - Input: :math:`(*, H_{in})` with :math:`H_{in} = \text{in\_features}`; any number of
          leading dimensions, including none.
        - Output: :math:`(*, H_{out})` with :math:`H_{out} = \text{out\_features}`.

    Attributes:
        weight_real, weight_imag: real and imaginary parts of :math:`W`, shape
            (out_features, in_features), initialised with a uniform random phase in
            :math:`[0, 2\pi)` and modulus :math:`1/\sqrt{\text{in\_features}}`.
        bias_real, bias_imag: real and imaginary parts of :math:`b`, shape (out_features),
            initialised like the weights; ``None`` if ``bias=False``.
        second_order: ``"exact"`` or ``"reference"``, see :func:`second_order_mode`.

    Example::

        >>> m = ComplexLinear(20, 30)
        >>> m(torch.rand(128, 20)).shape
        torch.Size([128, 30])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._make_params((out_features, in_features), out_features, bias,
                          {"device": device, "dtype": dtype})

    def _channel_dim(self, x: Tensor) -> int:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"ComplexLinear expects inputs shaped (*, {self.in_features}), "
                             f"got {tuple(x.shape)}")
        return x.dim() - 1

    def _affine(self, stacked: Tensor) -> Tensor:
        w = _block_weight(self.weight_real, self.weight_imag)
        return F.linear(stacked, w, _stacked_bias(self.bias_real, self.bias_imag))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_real is not None}"
        )


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(v: int | tuple[int, ...], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, int) for i in t):
        raise ValueError(f"ComplexConv2d: {name} must be an int or a pair of ints, got {v!r}")
    return (int(t[0]), int(t[1]))


class ComplexConv2d(_ComplexBase):
    r"""Phase-to-magnitude 2-D convolution: :math:`y = |W \star e^{ix} + b|`, :math:`W, b` complex.

    Takes the arguments of ``nn.Conv2d``. Padding pads the complex signal :math:`e^{ix}`:
    with zeros (``padding_mode="zeros"``), or by reflecting, replicating or wrapping it. With
    ``groups`` > 1, each group of output channels sees only its group of input channels, as in
    ``nn.Conv2d``. Computed as one real ``conv2d`` with 4x the MACs of the real layer.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: size of the kernel, an int or a pair.
        stride: stride of the convolution. Default: 1.
        padding: implicit padding on both sides, an int, a pair, ``"valid"`` (none) or
            ``"same"`` (output as large as the input; stride 1 only). Default: 0.
        dilation: spacing between kernel elements. Default: 1.
        groups: blocked connections from input to output channels; both channel counts
            must be divisible by it. Default: 1.
        bias: if ``False``, the layer has no complex bias. Default: ``True``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
            Default: ``"zeros"``.
        device, dtype: where and in which real floating dtype the parameters are created.

    Shape:
        - Input: :math:`(N, C_{in}, H_{in}, W_{in})` or :math:`(C_{in}, H_{in}, W_{in})`.
        - Output: :math:`(N, C_{out}, H_{out}, W_{out})` or :math:`(C_{out}, H_{out}, W_{out})`,
          with :math:`H_{out}, W_{out}` as for ``nn.Conv2d``.

    Attributes:
        weight_real, weight_imag: real and imaginary parts of :math:`W`, shape
            (out_channels, in_channels / groups, kH, kW), initialised with a uniform random phase
            and modulus :math:`1/\sqrt{\text{fan\_in}}`, fan_in = in_channels / groups * kH * kW.
        bias_real, bias_imag: real and imaginary parts of :math:`b`, shape (out_channels);
            ``None`` if ``bias=False``.
        second_order: ``"exact"`` or ``"reference"``, see :func:`second_order_mode`.

    Example::

        >>> m = ComplexConv2d(16, 33, 3, stride=2, padding=1)
        >>> m(torch.rand(20, 16, 50, 100)).shape
        torch.Size([20, 33, 25, 50])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"ComplexConv2d: groups must be a positive int, got {groups!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ComplexConv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"ComplexConv2d: padding_mode must be one of {_PADDING_MODES}, "
                             f"got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        self.groups, self._groups, self.padding_mode = groups, groups, padding_mode
        self.padding: str | tuple[int, int]
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"ComplexConv2d: padding must be 'same', 'valid', an int or "
                                 f"a pair, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("ComplexConv2d: padding='same' needs stride 1")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding")
        # F.pad's (left, right, top, bottom) for the non-zero padding modes
        if padding == "same":
            total = [dl * (k - 1) for dl, k in zip(self.dilation, self.kernel_size, strict=True)]
            self._pad = (total[1] // 2, total[1] - total[1] // 2,
                         total[0] // 2, total[0] - total[0] // 2)
        elif padding == "valid":
            self._pad = (0, 0, 0, 0)
        else:
            assert isinstance(self.padding, tuple)
            ph, pw = self.padding
            self._pad = (pw, pw, ph, ph)
        self._make_params((out_channels, in_channels // groups, *self.kernel_size),
                          out_channels, bias, {"device": device, "dtype": dtype})

    def _channel_dim(self, x: Tensor) -> int:
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"ComplexConv2d expects inputs shaped (N, {self.in_channels}, H, W) "
                             f"or ({self.in_channels}, H, W), got {tuple(x.shape)}")
        return x.dim() - 3

    def _affine(self, stacked: Tensor) -> Tensor:
        w = _block_weight(self.weight_real, self.weight_imag, self.groups)
        b = _stacked_bias(self.bias_real, self.bias_imag, self.groups)
        if self.padding_mode != "zeros":
            stacked = F.pad(stacked, self._pad, mode=self.padding_mode)
            return F.conv2d(stacked, w, b, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(stacked, w, b, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s + f", bias={self.bias_real is not None}"


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
    if not is_one_of(mode, SecondOrder):
        raise ValueError(f"unknown second-order mode {mode!r}; choose from "
                         f"{', '.join(SecondOrder)}")
    layers = [m for m in model.modules() if isinstance(m, _ComplexBase)]
    saved = [m.second_order for m in layers]
    try:
        for m in layers:
            m.second_order = mode
        yield model
    finally:
        for m, s in zip(layers, saved, strict=True):
            m.second_order = s
