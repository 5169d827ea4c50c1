"""Complex phase-to-magnitude layers against independent computations (float64)."""

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from cvgr.nn import (
    ComplexConv2d,
    ComplexLinear,
    GroupSum,
    InputShaping,
    PhaseScale,
    group_sum,
    second_order_mode,
)


@pytest.fixture(autouse=True)
def _float64():
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(prev)


def _linear(seed=0, bias=True):
    torch.manual_seed(seed)
    return ComplexLinear(5, 3, bias=bias).double()


def _conv(seed=0, bias=True):
    torch.manual_seed(seed)
    return ComplexConv2d(2, 3, 3, padding=1, bias=bias).double()


def _complex_weight(layer):
    return torch.complex(layer.weight_real, layer.weight_imag)


def test_linear_matches_complex_arithmetic():
    layer = _linear()
    x = torch.rand(4, 5) * math.pi
    w = _complex_weight(layer)
    b = torch.complex(layer.bias_real, layer.bias_imag)
    expected = (torch.exp(1j * x.to(torch.complex128)) @ w.T + b).abs()
    torch.testing.assert_close(layer(x), expected, rtol=1e-9, atol=1e-9)


def test_conv_matches_complex_arithmetic():
    layer = _conv()
    x = torch.rand(2, 2, 6, 5) * math.pi
    phasor = torch.exp(1j * x.to(torch.complex128))
    w = _complex_weight(layer)
    b = torch.complex(layer.bias_real, layer.bias_imag)
    # independent path: unfold the complex input, multiply by the complex kernel matrix
    cols = torch.complex(
        torch.nn.functional.unfold(phasor.real, 3, padding=1),
        torch.nn.functional.unfold(phasor.imag, 3, padding=1),
    )  # (N, C*9, L)
    z = torch.einsum("ok,nkl->nol", w.reshape(3, -1), cols) + b[None, :, None]
    expected = z.abs().reshape(2, 3, 6, 5)
    torch.testing.assert_close(layer(x), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("make", [_linear, _conv])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_and_gradgradcheck(make, bias):
    layer = make(bias=bias)
    shape = (3, 5) if isinstance(layer, ComplexLinear) else (2, 2, 4, 4)
    x = (torch.rand(shape) * math.pi).requires_grad_()
    params = [p for p in layer.parameters()]

    def f(x, *ps):
        return torch.func.functional_call(
            layer, dict(zip([n for n, _ in layer.named_parameters()], ps, strict=True)), (x,)
        )

    assert gradcheck(f, (x, *params))
    assert gradgradcheck(f, (x, *params))


@pytest.mark.parametrize("make", [_linear, _conv])
def test_reference_mode_first_derivatives_are_exact(make):
    layer = make()
    shape = (3, 5) if isinstance(layer, ComplexLinear) else (2, 2, 4, 4)
    x = (torch.rand(shape) * math.pi).requires_grad_()
    with second_order_mode(layer, "reference"):
        assert gradcheck(layer, (x,))
        y_ref = layer(x)
    torch.testing.assert_close(y_ref, layer(x))


def test_reference_mode_second_derivative_differs_from_exact():
    layer = _linear()
    x = (torch.rand(2, 5) * math.pi).requires_grad_()

    def input_grad_norm():
        (g,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
        return torch.autograd.grad(g.pow(2).sum(), layer.weight_real)[0]

    exact = input_grad_norm()
    with second_order_mode(layer, "reference"):
        ref = input_grad_norm()
    assert not torch.allclose(exact, ref, rtol=1e-3, atol=1e-6)


def test_unknown_second_order_mode_is_refused():
    with pytest.raises(ValueError, match="unknown second-order mode"):
        with second_order_mode(_linear(), "approximate"):
            pass


def test_unit_modulus_identity_linear():
    """Seed derivation: (dg/dW_R)^2 + (dg/dW_I)^2 = 1 for every weight of every output."""
    layer = _linear(seed=3)
    x = torch.rand(5) * 2 * math.pi
    for k in range(layer.out_features):
        gr, gi = torch.autograd.grad(layer(x)[k], [layer.weight_real, layer.weight_imag])
        torch.testing.assert_close(gr[k] ** 2 + gi[k] ** 2, torch.ones(5), rtol=1e-9, atol=1e-9)
        # other outputs' weights do not touch g_k
        mask = torch.ones(layer.out_features, dtype=torch.bool)
        mask[k] = False
        assert gr[mask].abs().max() == 0 and gi[mask].abs().max() == 0


def test_unit_modulus_identity_conv():
    layer = _conv(seed=4)
    x = torch.rand(1, 2, 5, 5) * 2 * math.pi
    out = layer(x)
    for o in range(layer.out_channels):
        for (i, j) in [(1, 1), (2, 3), (3, 2)]:  # interior positions: no zero padding in view
            gr, gi = torch.autograd.grad(out[0, o, i, j], [layer.weight_real, layer.weight_imag],
                                         retain_graph=True)
            torch.testing.assert_close(gr[o] ** 2 + gi[o] ** 2, torch.ones(2, 3, 3),
                                       rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("make", [_linear, _conv])
@pytest.mark.parametrize("mode", ["exact", "reference"])
def test_no_nan_at_zero_preactivation(make, mode):
    layer = make()
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    shape = (3, 5) if isinstance(layer, ComplexLinear) else (2, 2, 4, 4)
    x = (torch.rand(shape) * math.pi).requires_grad_()
    with second_order_mode(layer, mode):
        y = layer(x)
        assert torch.isfinite(y).all() and y.max() < 1e-5
        (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        penalty = gx.abs().sum() ** 2 + gx.pow(2).sum()
        grads = torch.autograd.grad(penalty, list(layer.parameters()), allow_unused=True)
    assert torch.isfinite(gx).all()
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    # full second derivative of the output with respect to its weights, at z = 0
    w = layer.weight_real
    (gw,) = torch.autograd.grad(layer(x.detach()).sum(), w, create_graph=True)
    (hw,) = torch.autograd.grad(gw.sum(), w)
    assert torch.isfinite(hw).all()


def test_initialisation_modulus_and_phase():
    torch.manual_seed(0)
    layer = ComplexConv2d(8, 64, 3)
    w = _complex_weight(layer)
    torch.testing.assert_close(w.abs(), torch.full_like(w.abs(), 1 / math.sqrt(72)))
    b = torch.complex(layer.bias_real, layer.bias_imag)
    torch.testing.assert_close(b.abs(), torch.full_like(b.abs(), 1 / math.sqrt(72)))
    phase = torch.angle(w).flatten() % (2 * math.pi)
    # uniform phase: each quarter of the circle gets about a quarter of the 4608 weights
    counts = torch.histc(phase, bins=4, min=0, max=2 * math.pi)
    assert (counts / phase.numel() - 0.25).abs().max() < 0.03


def test_group_sum_adds_consecutive_groups():
    x = torch.arange(2 * 6 * 2 * 2, dtype=torch.float64).reshape(2, 6, 2, 2)
    expected = x[:, 0:2] + x[:, 2:4] + x[:, 4:6]
    torch.testing.assert_close(group_sum(x, 3), expected)
    torch.testing.assert_close(GroupSum(3)(x), expected)
    with pytest.raises(ValueError, match="6 channels"):
        group_sum(x, 4)


def test_phase_scale_and_input_shaping():
    x = torch.linspace(0, 1, 11)
    torch.testing.assert_close(PhaseScale()(x), x * math.pi)
    s = InputShaping()(x)
    torch.testing.assert_close(s, x - torch.sin(2 * math.pi * x) / (2 * math.pi))
    # fixed points at 0, 1/2 and 1; flat slope at the ends
    torch.testing.assert_close(s[[0, 5, 10]], x[[0, 5, 10]])
    xe = torch.tensor([0.0, 1.0], requires_grad=True)
    (g,) = torch.autograd.grad(InputShaping()(xe).sum(), xe)
    torch.testing.assert_close(g, torch.zeros(2), atol=1e-12, rtol=0)
