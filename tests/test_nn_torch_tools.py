"""Complex layers under PyTorch's own tools, and parity with nn.Linear / nn.Conv2d arguments.

Every result is compared with an independent computation: autograd on the same model, a
Python loop, eager execution, or complex128 arithmetic (``nn.Conv2d``/``nn.Linear`` built with
``dtype=torch.complex128`` on e^{ix}).
"""

import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call, grad, jacrev, stack_module_state, vmap

from cvgr.models import create_model
from cvgr.nn import ComplexConv2d, ComplexLinear, GroupSum, PhaseScale, second_order_mode

f64 = torch.float64


def _small_net(seed: int = 0, dtype=f64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        PhaseScale(), ComplexConv2d(1, 4, 3, padding=1), GroupSum(2), nn.AvgPool2d(2),
        ComplexConv2d(2, 4, 3, padding="same", groups=2), nn.Flatten(), ComplexLinear(36, 5),
    ).to(dtype)


def _batch(n=3, dtype=f64):
    torch.manual_seed(11)
    return torch.rand(n, 1, 6, 6, dtype=dtype), torch.randint(0, 5, (n,))


def _autograd_gr(model, x, y, beta=3.0):
    """CE + beta * ||grad_x CE||_1^2 and its gradient, by autograd (create_graph)."""
    xg = x.clone().requires_grad_()
    ce = F.cross_entropy(model(xg), y)
    (gx,) = torch.autograd.grad(ce, xg, create_graph=True)
    total = ce + beta * gx.abs().flatten(1).sum(1).square().mean()
    return torch.autograd.grad(total, list(model.parameters()))


def _func_gr(model, params, x, y, beta=3.0):
    def ce(p, xx):
        return F.cross_entropy(functional_call(model, p, (xx,)), y)

    def total(p):
        gx = grad(ce, argnums=1)(p, x)
        return ce(p, x) + beta * gx.abs().flatten(1).sum(1).square().mean()

    return grad(total)(params)


# -- torch.func ---------------------------------------------------------------------------------

def test_func_grad_equals_autograd_for_parameters_and_input():
    model = _small_net()
    x, y = _batch()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xx):
        return F.cross_entropy(functional_call(model, p, (xx,)), y)

    gp, gx = grad(loss, argnums=(0, 1))(params, x)
    xg = x.clone().requires_grad_()
    ref = torch.autograd.grad(loss(dict(model.named_parameters()), xg),
                              [xg, *model.parameters()])
    torch.testing.assert_close(gx, ref[0])
    for a, b in zip(gp.values(), ref[1:], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["exact", "reference"])
def test_func_double_backward_gr_penalty_equals_autograd(mode):
    model = _small_net(1)
    x, y = _batch()
    params = {k: v.detach() for k, v in model.named_parameters()}
    with second_order_mode(model, mode):
        got = _func_gr(model, params, x, y)
        ref = _autograd_gr(model, x, y)
    for a, b in zip(got.values(), ref, strict=True):
        torch.testing.assert_close(a, b)


def test_jacrev_equals_autograd_jacobian():
    layer = ComplexLinear(4, 3, dtype=f64)
    x = torch.rand(4, dtype=f64) * math.pi
    torch.testing.assert_close(jacrev(layer)(x), torch.autograd.functional.jacobian(layer, x))


def test_vmap_over_inputs_equals_loop():
    model = _small_net(2)
    x, _ = _batch(4)
    got = vmap(model)(x.unsqueeze(1))  # each image as a batch of one
    torch.testing.assert_close(got.squeeze(1), torch.cat([model(xi[None]) for xi in x]))
    # per-sample input gradients through vmap(grad)
    per = vmap(grad(lambda xi: model(xi[None]).square().sum()))(x)
    loop = torch.stack([_input_grad(model, xi) for xi in x])
    torch.testing.assert_close(per, loop)


def _input_grad(model, xi):
    xg = xi[None].clone().requires_grad_()
    return torch.autograd.grad(model(xg).square().sum(), xg)[0][0]


def test_vmap_over_stacked_models_equals_loop():
    """Several models of one architecture as one stacked model: outputs, CE and GR gradients."""
    models = [_small_net(s) for s in range(3)]
    params, buffers = stack_module_state(models)
    base = models[0]
    x, y = _batch()

    def call(p, b, xx):
        return functional_call(base, (p, b), (xx,))

    out = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(x))

    def gr(p, b):
        def ce(pp, xx):
            return F.cross_entropy(call(pp, b, xx), y)

        gx = grad(ce, argnums=1)(p, x)
        return ce(p, x) + 3.0 * gx.abs().flatten(1).sum(1).square().mean()

    grads = vmap(grad(gr))(params, buffers)
    for i, m in enumerate(models):
        for (name, g), r in zip(grads.items(), _autograd_gr(m, x, y), strict=True):
            torch.testing.assert_close(g[i], r, msg=lambda s, n=name: f"{n}: {s}")


# -- compile and export -------------------------------------------------------------------------

def test_compile_fullgraph_forward_and_backward_equal_eager():
    """fullgraph=True fails on any graph break; aot_eager traces forward and backward graphs
    through AOTAutograd without generating C++ (fast in CI)."""
    torch._dynamo.reset()
    model = _small_net(3, torch.float32)
    x, y = _batch(dtype=torch.float32)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    lc = F.cross_entropy(compiled(xc), y)
    le = F.cross_entropy(model(xe), y)
    torch.testing.assert_close(lc, le)
    gc = torch.autograd.grad(lc, [xc, *model.parameters()])
    ge = torch.autograd.grad(le, [xe, *model.parameters()])
    for a, b in zip(gc, ge, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="torch.compile's inductor backend needs a C compiler")
def test_compile_inductor_layer_forward_and_backward_equal_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = ComplexLinear(6, 4)
    x = torch.rand(5, 6)
    compiled = torch.compile(layer, fullgraph=True)
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    yc, ye = compiled(xc), layer(xe)
    torch.testing.assert_close(yc, ye)
    gc = torch.autograd.grad(yc.square().sum(), [xc, *layer.parameters()])
    ge = torch.autograd.grad(ye.square().sum(), [xe, *layer.parameters()])
    for a, b in zip(gc, ge, strict=True):
        torch.testing.assert_close(a, b)


def test_export_of_a_complex_model():
    torch.manual_seed(0)
    model = create_model("MNISTNetV1", complex=True).eval()
    x = torch.rand(2, 1, 28, 28)
    ep = torch.export.export(model, (x,))
    x2 = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(ep.module()(x2), model(x2))
    conv = ComplexConv2d(4, 6, 3, padding="same", groups=2, padding_mode="reflect").eval()
    xc = torch.rand(1, 4, 5, 5)
    torch.testing.assert_close(torch.export.export(conv, (xc,)).module()(xc), conv(xc))


# -- nn.Linear / nn.Conv2d arguments, against complex128 arithmetic ------------------------------

def _complex_twin(layer: nn.Module, twin: nn.Module) -> nn.Module:
    """`twin` (a complex128 nn.Linear/nn.Conv2d) given layer's complex weight and bias."""
    with torch.no_grad():
        twin.weight.copy_(torch.complex(layer.weight_real, layer.weight_imag))
        if layer.bias_real is not None:
            twin.bias.copy_(torch.complex(layer.bias_real, layer.bias_imag))
    return twin


def _phasor(x):
    return torch.exp(1j * x.to(torch.complex128))


@pytest.mark.parametrize("kwargs", [
    {},
    {"stride": 2},
    {"stride": (2, 1), "padding": (1, 2)},
    {"padding": "valid"},
    {"padding": "same", "dilation": 2},
    {"padding": "same", "kernel_size": (2, 4)},
    {"padding": 1, "dilation": (2, 1), "stride": 2},
    {"groups": 2, "padding": 1},
    {"groups": 4, "padding": "same", "bias": False},
    {"padding": 2, "padding_mode": "reflect"},
    {"padding": "same", "padding_mode": "replicate", "groups": 2},
    {"padding": (1, 2), "padding_mode": "circular"},
])
def test_conv_options_match_complex_conv(kwargs):
    kwargs = {"kernel_size": 3, **kwargs}
    torch.manual_seed(5)
    layer = ComplexConv2d(4, 8, dtype=f64, **kwargs)
    twin = _complex_twin(layer, nn.Conv2d(4, 8, dtype=torch.complex128, **kwargs))
    x = torch.rand(2, 4, 7, 6, dtype=f64) * 2 * math.pi
    torch.testing.assert_close(layer(x), twin(_phasor(x)).abs(), rtol=1e-9, atol=1e-9)
    # unbatched (C, H, W) input, as nn.Conv2d accepts
    torch.testing.assert_close(layer(x[1]), twin(_phasor(x[1])).abs(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(layer.complex_preactivation(x), twin(_phasor(x)),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kwargs", [
    {"groups": 2, "padding": 1},
    {"padding": "same", "padding_mode": "reflect", "stride": 1, "dilation": 2},
])
def test_conv_options_first_and_second_derivatives(kwargs):
    torch.manual_seed(6)
    layer = ComplexConv2d(2, 2, 3, dtype=f64, **kwargs)
    x = (torch.rand(1, 2, 4, 4, dtype=f64) * math.pi).requires_grad_()
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps, strict=True)), (x,))

    params = tuple(layer.parameters())
    assert gradcheck(f, (x, *params))
    assert gradgradcheck(f, (x, *params))


def test_linear_matches_complex_linear_with_any_leading_dims():
    torch.manual_seed(7)
    layer = ComplexLinear(5, 3, dtype=f64)
    twin = _complex_twin(layer, nn.Linear(5, 3, dtype=torch.complex128))
    for shape in [(5,), (4, 5), (2, 3, 5)]:
        x = torch.rand(shape, dtype=f64) * 2 * math.pi
        torch.testing.assert_close(layer(x), twin(_phasor(x)).abs(), rtol=1e-9, atol=1e-9)
    nobias = ComplexLinear(5, 3, bias=False, dtype=f64)
    twin = _complex_twin(nobias, nn.Linear(5, 3, bias=False, dtype=torch.complex128))
    x = torch.rand(4, 5, dtype=f64)
    torch.testing.assert_close(nobias(x), twin(_phasor(x)).abs(), rtol=1e-9, atol=1e-9)


def test_device_and_dtype_arguments():
    lin = ComplexLinear(4, 3, device="cpu", dtype=f64)
    conv = ComplexConv2d(2, 3, 3, device=torch.device("cpu"), dtype=torch.float16)
    assert all(p.dtype == f64 and p.device.type == "cpu" for p in lin.parameters())
    assert all(p.dtype == torch.float16 for p in conv.parameters())
    # initialisation is the same law whatever the dtype: modulus 1/sqrt(fan_in)
    w = torch.complex(lin.weight_real, lin.weight_imag)
    torch.testing.assert_close(w.abs(), torch.full((3, 4), 0.5, dtype=f64))


@pytest.mark.parametrize("bad, match", [
    ({"groups": 3}, "divisible by groups"),
    ({"padding": "full"}, "padding must be"),
    ({"padding": "same", "stride": 2}, "needs stride 1"),
    ({"padding_mode": "mirror"}, "padding_mode must be one of"),
    ({"stride": (1, 2, 3)}, "stride must be an int or a pair"),
])
def test_bad_conv_arguments_are_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        ComplexConv2d(4, 8, 3, **bad)


def test_wrong_input_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"ComplexConv2d expects inputs shaped \(N, 4, H, W\)"):
        ComplexConv2d(4, 8, 3)(torch.rand(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"ComplexLinear expects inputs shaped \(\*, 4\)"):
        ComplexLinear(4, 2)(torch.rand(2, 5))
