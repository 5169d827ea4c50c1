"""The arithmetic of the complex layers: the phasor e^{ix} and the magnitude |z| as
autograd Functions with hand-derived first and second derivatives, and the real block form
of a complex weight (see the package docstring, :mod:`cvgr.nn`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["MAGNITUDE_FLOOR", "block_weight", "grouped", "magnitude", "phasor", "stacked_bias"]

# Below this modulus the unit phasor z/|z| is taken as 0 and 1/|z| as 1/MAGNITUDE_FLOOR: |z| stays
# exact, its gradient at z = 0 is the subgradient 0 and its second derivative stays finite.
MAGNITUDE_FLOOR = 1e-6


def grouped(t: Tensor, d: int, groups: int) -> Tensor:
    """View (.., G*2*c, ..) as (.., G, 2, c, ..): per group, real and imaginary halves."""
    return t.unflatten(d, (groups, 2, t.shape[d] // (2 * groups)))


def _split(t: Tensor, d: int, groups: int) -> Tensor:
    """View (.., G*c, ..) as (.., G, 1, c, ..): broadcasts against a :func:`grouped` tensor."""
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
        g2, p2 = grouped(grad, d, groups), grouped(p, d, groups)
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
        p2 = grouped(p, d, groups)
        b2 = _split(b, d, groups)
        # d e^{ix} / dx = [-sin x; cos x]
        d_phasor = torch.stack([-p2.select(d + 1, 1), p2.select(d + 1, 0)], dim=d + 1)
        d_grad = (b2 * d_phasor).flatten(d, d + 2)
        d_x = None
        if not ctx.const:
            d_x = (-b2 * (grouped(grad, d, groups) * p2).sum(d + 1, keepdim=True))
            d_x = d_x.flatten(d, d + 2)
        return d_grad, d_x, None, None, None, None


class _Magnitude(torch.autograd.Function):
    """Per group [zR; zI] (2C channels) along dim d -> |z| (C channels)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor, d: int, groups: int, const: bool) -> Tensor:
        z2 = grouped(z, d, groups)
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
        return (grouped(z, d, groups) * _split(grad * scale, d, groups)).flatten(d, d + 2)

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
        u = grouped(z, d, groups) * _split(scale, d, groups)
        a2 = grouped(a, d, groups)
        a_dot_u = (a2 * u).sum(d + 1, keepdim=True)
        d_grad = a_dot_u.flatten(d, d + 2)
        d_z = None
        if not ctx.const:
            d_z = ((a2 - u * a_dot_u) * _split(grad * inv, d, groups)).flatten(d, d + 2)
        return d_grad, d_z, None, None, None, None


def block_weight(w_real: Tensor, w_imag: Tensor, groups: int = 1) -> Tensor:
    """Per group [[W_R, -W_I], [W_I, W_R]] along the (out, in) dims: [zR; zI] = B [cos; sin]."""
    wr, wi = w_real.unflatten(0, (groups, -1)), w_imag.unflatten(0, (groups, -1))
    top = torch.cat([wr, -wi], dim=2)
    bottom = torch.cat([wi, wr], dim=2)
    return torch.cat([top, bottom], dim=1).flatten(0, 1)


def stacked_bias(b_real: Tensor | None, b_imag: Tensor | None, groups: int = 1) -> Tensor | None:
    if b_real is None or b_imag is None:
        return None
    return torch.stack([b_real.unflatten(0, (groups, -1)), b_imag.unflatten(0, (groups, -1))],
                       dim=1).flatten()



def phasor(x: Tensor, d: int, groups: int = 1, const: bool = False) -> Tensor:
    """x (C channels along dim d) -> per group [cos x_g; sin x_g] (2C channels); `const` holds
    e^{ix} constant when the input-gradient is differentiated again (the reference pass)."""
    return _Phasor.apply(x, d, groups, const)


def magnitude(z: Tensor, d: int, groups: int = 1, const: bool = False) -> Tensor:
    """Per group [zR; zI] (2C channels along dim d) -> |z| (C channels); `const` holds the unit
    phasor z/|z| constant when the input-gradient is differentiated again."""
    return _Magnitude.apply(z, d, groups, const)
