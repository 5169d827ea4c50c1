"""The complex layers, ComplexLinear and ComplexConv2d, and `second_order_mode`, which sets
how they are differentiated a second time (see :mod:`cvgr.nn`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.names import SecondOrder, is_one_of
from cvgr.nn.functional import block_weight, grouped, magnitude, phasor, stacked_bias

__all__ = ["ComplexConv2d", "ComplexLinear", "second_order_mode"]


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
            z = grouped(self._affine(phasor(x, d, self._groups, False)), d, self._groups)
        return torch.complex(z.select(d + 1, 0), z.select(d + 1, 1)).flatten(d, d + 1)

    def forward(self, x: Tensor) -> Tensor:
        d = self._channel_dim(x)
        const = self.second_order == SecondOrder.REFERENCE
        stacked = phasor(x, d, self._groups, const)
        return magnitude(self._affine(stacked), d, self._groups, const)


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
        w = block_weight(self.weight_real, self.weight_imag)
        return F.linear(stacked, w, stacked_bias(self.bias_real, self.bias_imag))

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
        w = block_weight(self.weight_real, self.weight_imag, self.groups)
        b = stacked_bias(self.bias_real, self.bias_imag, self.groups)
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
