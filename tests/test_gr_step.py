"""The traced / compiled GR step against the eager one and against finite differences."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvgr.defenses import gradient_regularized_loss
from cvgr.defenses.gr_step import GRStep
from cvgr.errors import UserError
from cvgr.nn import ComplexConv2d, ComplexLinear, GroupSum, PhaseScale, second_order_mode
from cvgr.train import TrainConfig
from cvgr.train.loop import make_gr_step, train_epoch

f64 = torch.float64


def _net(complex=True, seed=0, dtype=f64):
    torch.manual_seed(seed)
    if complex:
        layers = [PhaseScale(), ComplexConv2d(1, 4, 3, padding=1), GroupSum(2), nn.AvgPool2d(2),
                  nn.Flatten(), ComplexLinear(18, 4)]
    else:
        layers = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                  nn.Linear(36, 4)]
    return nn.Sequential(*layers).to(dtype)


def _batch(n=4, dtype=f64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g, dtype=dtype), torch.randint(0, 4, (n,),
                                                                          generator=g)


def _eager_grads(model, x, y, beta, q, mode):
    model.zero_grad(set_to_none=True)
    out = gradient_regularized_loss(model, x, y, beta, q=q, mode=mode)
    out.total.backward()
    return out, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("complex", [True, False])
@pytest.mark.parametrize("q, mode", [(1, "exact"), (2, "exact"), (1, "reference")])
def test_traced_step_equals_eager_step(complex, q, mode):
    model = _net(complex)
    x, y = _batch()
    ref, ref_grads = _eager_grads(model, x, y, 3.0, q, mode)
    model.zero_grad(set_to_none=True)
    out = GRStep(model, 3.0, q=q, mode=mode)(x, y)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b.detach())
    for p, g in zip(model.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_traced_step_gradient_matches_finite_differences():
    """d/dt of CE + beta * P along a random parameter direction, central differences, float64."""
    model = _net(seed=3)
    x, y = _batch(seed=4)
    beta = 5.0
    step = GRStep(model, beta)
    out = step(x, y)  # fills p.grad
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(0)
    v = [torch.randn(p.shape, generator=gen, dtype=f64) for p in params]
    directional = sum((p.grad * vi).sum() for p, vi in zip(params, v, strict=True))

    def objective():
        xg = x.clone().requires_grad_()
        ce = F.cross_entropy(model(xg), y)
        (gx,) = torch.autograd.grad(ce, xg)
        return float(ce + beta * gx.flatten(1).abs().sum(1).square().mean())

    eps = 1e-5
    with torch.no_grad():
        for p, vi in zip(params, v, strict=True):
            p.add_(eps * vi)
    plus = objective()
    with torch.no_grad():
        for p, vi in zip(params, v, strict=True):
            p.sub_(2 * eps * vi)
    minus = objective()
    with torch.no_grad():
        for p, vi in zip(params, v, strict=True):
            p.add_(eps * vi)
    assert math.isclose(out.total.item(), objective(), rel_tol=1e-12)
    assert math.isclose((plus - minus) / (2 * eps), directional.item(), rel_tol=1e-6)


def test_reference_mode_differs_from_exact_in_the_traced_step():
    model = _net(seed=5)
    x, y = _batch(seed=6)
    GRStep(model, 3.0, mode="exact")(x, y)
    exact = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    GRStep(model, 3.0, mode="reference")(x, y)
    assert not all(torch.allclose(p.grad, e) for p, e in zip(model.parameters(), exact,
                                                             strict=True))
    with second_order_mode(model, "reference"):
        assert all(m.second_order == "reference" for m in model.modules()
                   if isinstance(m, ComplexLinear))


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="torch.compile's inductor backend needs a C compiler")
def test_compiled_step_equals_eager_step_float32():
    torch._dynamo.reset()
    model = _net(dtype=torch.float32)
    x, y = _batch(dtype=torch.float32)
    ref, ref_grads = _eager_grads(model, x, y, 3.0, 1, "exact")
    model.zero_grad(set_to_none=True)
    step = GRStep(model, 3.0, gr_step="compiled")
    out = step(x, y)
    torch.testing.assert_close(out.total, ref.total.detach(), rtol=1e-5, atol=1e-6)
    for p, g in zip(model.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_compile_failure_falls_back_to_the_traced_graph(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    model = _net(seed=7)
    x, y = _batch()
    _, ref_grads = _eager_grads(model, x, y, 2.0, 1, "exact")
    model.zero_grad(set_to_none=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no compiler here"):
        GRStep(model, 2.0, gr_step="compiled")(x, y)
    for p, g in zip(model.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_unsupported_settings_keep_the_eager_step():
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, 4))
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1", complex=True,
                      beta=1.0).resolved()
    assert make_gr_step(bn, cfg, "compiled") is None
    assert make_gr_step(_net(), TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1",
                                            beta=1.0, gr_mode="fd").resolved(), "traced") is None
    assert make_gr_step(_net(), TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1",
                                            beta=0.0).resolved(), "traced") is None
    assert isinstance(make_gr_step(_net(), cfg, "traced"), GRStep)
    with pytest.raises(UserError, match="needs eager, traced or compiled, got 'jit'"):
        make_gr_step(_net(), cfg, "jit")
    with pytest.raises(UserError, match="needs eager, traced or compiled, got 'auto'"):
        make_gr_step(_net(), cfg, "auto")  # auto is resolved against the loader first
    with pytest.raises(UserError, match="without BatchNorm"):
        GRStep(bn, 1.0)


class _Loader:
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def epoch(self, e):
        return iter(self.batches)


def test_train_epoch_with_the_traced_step_follows_the_eager_one():
    """Same SGD trajectory (float64) over several steps, cosine batch included."""
    batches = [_batch(seed=s) for s in range(4)]
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1", complex=True, beta=4.0,
                      lr=0.05, cos_batches=1).resolved()
    results = []
    for kind in ("eager", "traced"):
        model = _net(seed=9)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        stats = train_epoch(model, opt, _Loader(batches), 0, cfg, gr_step=kind)
        results.append((stats, [p.detach().clone() for p in model.parameters()]))
    (s0, w0), (s1, w1) = results
    for a, b in zip(w0, w1, strict=True):
        torch.testing.assert_close(a, b)
    for k in ("ce", "gr", "loss", "train_acc", "cos"):
        assert math.isclose(s0[k], s1[k], rel_tol=1e-9), k


def test_stacked_models_step_by_step_equal_one_by_one_float32():
    """vmap of the step over stacked weights trains 3 models at once; at every SGD step each
    model's gradients equal what its own step gives at the same weights (float32 rounding)."""
    from torch.func import stack_module_state, vmap

    models = [_net(seed=s, dtype=torch.float32) for s in range(3)]
    params, buffers = stack_module_state(models)
    params = {k: v.detach().clone() for k, v in params.items()}
    stacked = vmap(GRStep(models[0], 3.0).functional(), in_dims=(0, 0, None, None))
    steps = [GRStep(m, 3.0) for m in models]
    for t in range(3):
        x, y = _batch(dtype=torch.float32, seed=10 + t)
        grads, (total, _, _, _) = stacked(params, buffers, x, y)
        for i, (m, step) in enumerate(zip(models, steps, strict=True)):
            with torch.no_grad():  # the one-by-one model at the stacked model's weights
                for n, p in m.named_parameters():
                    p.copy_(params[n][i])
            m.zero_grad(set_to_none=True)
            out = step(x, y)
            torch.testing.assert_close(total[i], out.total)
            for n, p in m.named_parameters():
                err = (grads[n][i] - p.grad).norm() / p.grad.norm()
                assert err < 1e-5, (t, i, n, float(err))
        params = {n: p - 0.1 * grads[n] for n, p in params.items()}


def test_auto_traces_runs_long_enough_to_win_the_trace_back(monkeypatch):
    import cvgr.defenses.gr_step as gs
    from cvgr.defenses.gr_step import AUTO_COMPILE_BATCHES, AUTO_MIN_BATCHES, resolve_gr_step

    monkeypatch.setattr(gs, "_cxx_compiler", lambda: "/usr/bin/g++")
    assert resolve_gr_step("auto", AUTO_MIN_BATCHES) == "traced"
    assert resolve_gr_step("auto", AUTO_MIN_BATCHES - 1) == "eager"
    assert resolve_gr_step("auto", AUTO_MIN_BATCHES - 1, 1000) == "eager"  # short epochs: eager
    assert resolve_gr_step("auto", 938) == "traced"  # one Fashion-MNIST epoch at batch 64
    assert resolve_gr_step("auto", 938, 30) == "compiled"  # the paper's recipe, on a CPU
    assert resolve_gr_step("auto", 938, 30, "cuda") == "traced"  # the GPU zoo's step
    assert resolve_gr_step("auto", 157, 3) == "traced"  # the quick budget: 471 batches
    assert resolve_gr_step("auto", AUTO_COMPILE_BATCHES // 10, 10) == "compiled"
    assert resolve_gr_step("auto", AUTO_COMPILE_BATCHES // 10, 9) == "traced"
    monkeypatch.setattr(gs, "_cxx_compiler", lambda: None)  # no compiler: never compiled
    assert resolve_gr_step("auto", 938, 30) == "traced"
    for kind in ("eager", "traced", "compiled"):
        assert resolve_gr_step(kind, 1) == resolve_gr_step(kind, 10_000) == kind
    with pytest.raises(UserError, match="unknown GR step 'jit'; choose from auto, eager"):
        resolve_gr_step("jit", 500)


def test_train_epoch_auto_takes_the_traced_step_on_a_long_epoch(monkeypatch):
    """The default kind reaches the step: with AUTO_MIN_BATCHES lowered to the loader's
    length, train_epoch("auto") runs GRStep (counted), and the weights equal eager's."""
    import cvgr.defenses.gr_step as gs

    calls = []
    real_call = gs.GRStep.__call__

    def counting(self, x, y):
        calls.append(len(y))
        return real_call(self, x, y)

    monkeypatch.setattr(gs.GRStep, "__call__", counting)
    batches = [_batch(seed=s) for s in range(3)]
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1", complex=True, beta=4.0,
                      lr=0.05, cos_batches=0).resolved()
    weights = {}
    for minimum in (4, 3):  # 3 batches: eager below the threshold, traced at it
        monkeypatch.setattr(gs, "AUTO_MIN_BATCHES", minimum)
        model = _net(seed=9)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        train_epoch(model, opt, _Loader(batches), 0, cfg, gr_step="auto")
        weights[minimum] = [p.detach().clone() for p in model.parameters()]
        assert len(calls) == (0 if minimum == 4 else 3)
    for a, b in zip(weights[4], weights[3], strict=True):
        torch.testing.assert_close(a, b)
