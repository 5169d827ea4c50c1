"""Gradient penalty (exact / reference / fd), noise and adversarial batches, in float64.

Every numerical claim is checked against a computation that does not share the code path:
central finite differences (input and parameters), a per-image loop, and a hand-written
implementation of the reference code's truncated second pass.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.defenses import (
    adversarial_batch,
    gaussian_noise,
    gradient_regularized_loss,
    input_gradient_penalty,
)
from cvgr.errors import UserError
from cvgr.models import create_model
from cvgr.nn import ComplexConv2d, ComplexLinear, PhaseScale

DT = torch.float64


def tiny_complex(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        PhaseScale(), ComplexConv2d(1, 2, 3, padding=1), nn.AvgPool2d(2), nn.Flatten(),
        ComplexLinear(8, 3),
    ).to(DT)


def tiny_real(seed: int = 0) -> nn.Module:
    # tanh, not ReLU: finite differences of the penalty need a twice-differentiable net.
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3),
    ).to(DT)


def batch(seed: int = 1, n: int = 3, classes: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g, dtype=DT), torch.randint(0, classes, (n,),
                                                                           generator=g)


def param_grads(model: nn.Module, value: Tensor) -> list[Tensor]:
    return list(torch.autograd.grad(value, list(model.parameters())))


def fd_input_grad_penalty(model: nn.Module, x: Tensor, y: Tensor, q: int, step: float = 1e-6
                          ) -> float:
    """Penalty with d CE_mean / dx from central differences of CE_mean: no autograd at all."""
    flat = x.detach().clone().flatten()
    grad = torch.empty_like(flat)
    with torch.no_grad():
        for j in range(flat.numel()):
            xp, xm = flat.clone(), flat.clone()
            xp[j] += step
            xm[j] -= step
            lp = F.cross_entropy(model(xp.view_as(x)), y)
            lm = F.cross_entropy(model(xm.view_as(x)), y)
            grad[j] = (lp - lm) / (2 * step)
    g = grad.view(x.shape[0], -1)
    norms = g.abs().sum(1) ** 2 if q == 1 else (g**2).sum(1)
    return norms.mean().item()


# -- exact mode -------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("make", [tiny_complex, tiny_real])
def test_exact_value_matches_finite_differences_in_x(make, q):
    model = make()
    x, y = batch()
    got = input_gradient_penalty(model, x, y, q=q).item()
    assert got == pytest.approx(fd_input_grad_penalty(model, x, y, q), rel=1e-7)


@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("arch,cplx", [("MNISTNetV0", False), ("MNISTNetV1", True)])
def test_exact_value_equals_per_image_loop_over_one_over_b_squared(arch, cplx, q):
    torch.manual_seed(0)
    model = create_model(arch, complex=cplx).to(DT)
    x = torch.rand(3, 1, 28, 28, dtype=DT)
    y = torch.tensor([1, 7, 3])
    total = 0.0
    for i in range(3):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(F.cross_entropy(model(xi), y[i:i + 1]), xi)
        total += (gi.abs().sum() ** 2 if q == 1 else (gi**2).sum()).item()
    expected = total / 3 / 3**2  # mean over images of ||grad l_i||^2, divided by B^2
    assert input_gradient_penalty(model, x, y, q=q).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("make", [tiny_complex, tiny_real])
def test_exact_parameter_gradient_matches_central_differences(make, q):
    model = make()
    x, y = batch()
    grads = param_grads(model, input_gradient_penalty(model, x, y, q=q))
    step = 1e-6
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads, strict=True):
            flat = p.view(-1)
            num = torch.empty_like(flat)
            for j in range(flat.numel()):
                old = flat[j].item()
                flat[j] = old + step
                with torch.enable_grad():
                    up = input_gradient_penalty(model, x, y, q=q, create_graph=False)
                flat[j] = old - step
                with torch.enable_grad():
                    down = input_gradient_penalty(model, x, y, q=q, create_graph=False)
                flat[j] = old
                num[j] = (up - down) / (2 * step)
            torch.testing.assert_close(g.view(-1), num, rtol=1e-5, atol=1e-9)


# -- reference mode ---------------------------------------------------------------------------

def test_reference_value_equals_exact_but_gradient_differs_on_complex_model():
    model = tiny_complex()
    x, y = batch()
    exact = input_gradient_penalty(model, x, y, mode="exact")
    ref = input_gradient_penalty(model, x, y, mode="reference")
    # First derivatives are unchanged: same penalty value ...
    assert ref.item() == pytest.approx(exact.item(), rel=1e-12)
    ge = torch.cat([g.flatten() for g in param_grads(model, exact)])
    gr = torch.cat([g.flatten() for g in param_grads(model, ref)])
    # ... but the truncated second pass gives a different parameter gradient.
    assert (ge - gr).norm() > 0.05 * ge.norm()
    # And the layers are back in exact mode afterwards.
    assert all(m.second_order == "exact" for m in model.modules() if hasattr(m, "second_order"))


def test_reference_equals_exact_on_real_model():
    model = tiny_real()
    x, y = batch()
    ge = param_grads(model, input_gradient_penalty(model, x, y, mode="exact"))
    gr = param_grads(model, input_gradient_penalty(model, x, y, mode="reference"))
    for a, b in zip(ge, gr, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def hand_written_penalty(layer: ComplexLinear, x: Tensor, y: Tensor, q: int, truncated: bool
                         ) -> Tensor:
    """P for logits = |W e^{i pi x} + b|, written out with complex tensors.

    dg_k/dx_j = pi * Re(conj(u_k) W_kj i e^{i pi x_j}), u = z/|z|; the truncated rule holds u
    and e^{i pi x} constant, so only the upstream gradient and W carry derivatives.
    """
    w = torch.complex(layer.weight_real, layer.weight_imag)
    b = torch.complex(layer.bias_real, layer.bias_imag)
    phasor = torch.polar(torch.ones_like(x), math.pi * x)
    z = phasor @ w.T + b
    g = torch.sqrt(z.real**2 + z.imag**2)  # |z| is far from 0 here, no smoothing needed
    u = z / g
    if truncated:
        u, phasor = u.detach(), phasor.detach()
    upstream = (torch.softmax(g, dim=1) - F.one_hot(y, g.shape[1]).to(g.dtype)) / x.shape[0]
    # (B, out, in): Re(conj(u_k) W_kj i e^{i x_j})
    local = (u.conj()[:, :, None] * w[None] * (1j * phasor)[:, None, :]).real
    dx = math.pi * torch.einsum("bk,bkj->bj", upstream, local)
    norms = dx.abs().sum(1) ** 2 if q == 1 else (dx**2).sum(1)
    return norms.mean()


@pytest.mark.parametrize("q", [1, 2])
def test_reference_matches_hand_written_truncated_rule_on_one_layer(q):
    torch.manual_seed(3)
    layer = ComplexLinear(5, 4).to(DT)
    model = nn.Sequential(PhaseScale(), layer)
    x = torch.rand(6, 5, dtype=DT)
    y = torch.tensor([0, 1, 2, 3, 0, 2])
    for mode, truncated in [("reference", True), ("exact", False)]:
        ours = input_gradient_penalty(model, x, y, q=q, mode=mode)
        theirs = hand_written_penalty(layer, x, y, q, truncated)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
        for a, b in zip(param_grads(model, ours), param_grads(model, theirs), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    # The two rules really are different (else the loop above proves nothing).
    gt = param_grads(model, hand_written_penalty(layer, x, y, q, True))
    gf = param_grads(model, hand_written_penalty(layer, x, y, q, False))
    assert (gt[0] - gf[0]).norm() > 1e-3 * gf[0].norm()


# -- finite-difference mode -------------------------------------------------------------------

@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("make", [tiny_complex, tiny_real])
def test_fd_converges_to_exact_as_h_shrinks(make, q):
    model = make()
    x, y = batch()
    exact = input_gradient_penalty(model, x, y, q=q)
    g_exact = torch.cat([g.flatten() for g in param_grads(model, exact)])
    value_err, grad_err = [], []
    for h in [1e-1, 1e-2, 1e-3, 1e-4]:
        fd = input_gradient_penalty(model, x, y, q=q, mode="fd", h=h)
        g_fd = torch.cat([g.flatten() for g in param_grads(model, fd)])
        value_err.append(abs(fd.item() - exact.item()) / exact.item())
        grad_err.append(((g_fd - g_exact).norm() / g_exact.norm()).item())
    assert all(a > b for a, b in zip(value_err, value_err[1:], strict=False)), value_err
    assert all(a > b for a, b in zip(grad_err, grad_err[1:], strict=False)), grad_err
    assert value_err[-1] < 1e-3 and grad_err[-1] < 1e-3
    assert value_err[0] > 10 * value_err[-1]  # the error really depends on h


def test_fd_default_step_is_close_to_exact_on_mnist_complex_float32():
    torch.manual_seed(0)
    model = create_model("MNISTNetV1", complex=True)
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    for q in (1, 2):
        exact = input_gradient_penalty(model, x, y, q=q, create_graph=False).item()
        fd = input_gradient_penalty(model, x, y, q=q, mode="fd", create_graph=False).item()
        assert fd == pytest.approx(exact, rel=0.1)


def test_fd_keeps_batchnorm_running_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    x = torch.rand(5, 1, 4, 4)
    y = torch.randint(0, 3, (5,))
    reference = [b.clone() for b in model.buffers()]
    gradient_regularized_loss(model, x, y, beta=1.0, mode="fd")
    bn = model[1]
    # exactly one update, from the clean batch
    assert bn.num_batches_tracked.item() == 1
    model2 = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    model2.load_state_dict({**model.state_dict(), **dict(zip(
        [k for k, _ in model.named_buffers()], reference, strict=True))})
    model2(x)
    for a, b in zip(model.buffers(), model2.buffers(), strict=True):
        torch.testing.assert_close(a, b)


# -- the training objective -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["exact", "reference", "fd"])
def test_gradient_regularized_loss_is_ce_plus_beta_penalty_with_one_forward(mode):
    model = tiny_complex()
    x, y = batch()
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    out = gradient_regularized_loss(model, x, y, beta=7.0, q=1, mode=mode, h=1e-3)
    hook.remove()
    assert len(calls) == (2 if mode == "fd" else 1)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, model(x))
        torch.testing.assert_close(out.ce, F.cross_entropy(model(x), y))
    torch.testing.assert_close(out.total, out.ce + 7.0 * out.penalty)
    got = param_grads(model, out.total)
    separate = F.cross_entropy(model(x), y) + 7.0 * input_gradient_penalty(
        model, x, y, q=1, mode=mode, h=1e-3)
    for a, b in zip(got, param_grads(model, separate), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_beta_zero_reports_a_detached_penalty_and_trains_on_ce():
    model = tiny_complex()
    x, y = batch()
    out = gradient_regularized_loss(model, x, y, beta=0.0)
    assert not out.penalty.requires_grad and out.penalty.item() > 0
    for a, b in zip(param_grads(model, out.total),
                    param_grads(model, F.cross_entropy(model(x), y)), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["exact", "reference", "fd"])
def test_zero_weights_give_finite_penalty_and_gradients(mode):
    model = create_model("MNISTNetV1", complex=True).to(DT)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    x = torch.rand(2, 1, 28, 28, dtype=DT)
    y = torch.tensor([0, 5])
    out = gradient_regularized_loss(model, x, y, beta=512.0, mode=mode)
    assert torch.isfinite(out.total) and torch.isfinite(out.penalty)
    out.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_arguments_raise_user_error():
    model = tiny_real()
    x, y = batch()
    for kwargs in [{"mode": "double"}, {"q": 3}, {"q": True}, {"mode": "fd", "h": 0.0},
                   {"h": -1.0}, {"h": math.nan}]:
        with pytest.raises(UserError):
            input_gradient_penalty(model, x, y, **kwargs)
    with pytest.raises(UserError):
        input_gradient_penalty(model, x, y[:2])
    with pytest.raises(UserError):
        input_gradient_penalty(model, x, y.to(DT))
    for beta in [-1.0, math.inf, math.nan]:
        with pytest.raises(UserError):
            gradient_regularized_loss(model, x, y, beta=beta)


# -- noise ------------------------------------------------------------------------------------

def test_gaussian_noise_clamps_and_is_reproducible():
    x = torch.full((4, 1, 28, 28), 0.5)
    a = gaussian_noise(x, 0.05, generator=torch.Generator().manual_seed(0))
    b = gaussian_noise(x, 0.05, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert (a - x).std().item() == pytest.approx(0.05, rel=0.05)
    edge = gaussian_noise(torch.ones(2, 1, 28, 28), 0.3)
    assert edge.min() >= 0 and edge.max() <= 1 and edge.min() < 1
    torch.testing.assert_close(gaussian_noise(x, 0.0), x)
    with pytest.raises(UserError):
        gaussian_noise(x, -0.1)


# -- adversarial batches ----------------------------------------------------------------------

def trained_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    """A small net trained for a moment on a task it can learn: class = brightest quadrant."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, 8, 8, generator=g) * 0.6
    y = torch.randint(0, 4, (256,), generator=g)
    for k in range(4):
        r, c = divmod(k, 2)
        x[y == k, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 0.4
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model, x[:64], y[:64]


@pytest.mark.parametrize("kind,steps", [("pgd", 4), ("pgd", 8), ("fgsm", 1)])
def test_adversarial_batch_stays_in_ball_and_raises_loss(kind, steps):
    model, x, y = trained_mlp()
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y).item()
    assert clean < 0.5  # the model has learnt something
    for training in (True, False):
        model.train(training)
        adv = adversarial_batch(model, x, y, eps=0.2, steps=steps, attack=kind,
                                generator=torch.Generator().manual_seed(1))
        assert model.training is training
        assert not adv.requires_grad
        assert (adv - x).abs().max() <= 0.2 + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y).item() > clean + 1.0


def test_pgd_one_step_without_start_is_fgsm_and_more_steps_are_stronger():
    model, x, y = trained_mlp()
    fgsm = adversarial_batch(model, x, y, eps=0.1, steps=1, attack="fgsm")
    pgd1 = adversarial_batch(model, x, y, eps=0.1, steps=1, random_start=False)
    torch.testing.assert_close(fgsm, pgd1)  # 1.85 eps, projected back onto the eps-ball
    pgd8 = adversarial_batch(model, x, y, eps=0.1, steps=8,
                             generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert F.cross_entropy(model(pgd8), y) > F.cross_entropy(model(fgsm), y)


def test_adversarial_batch_leaves_batchnorm_statistics_and_validates():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    x = torch.rand(5, 1, 4, 4)
    y = torch.randint(0, 3, (5,))
    before = [b.clone() for b in model.buffers()]
    adversarial_batch(model, x, y, eps=0.1, steps=3)
    for a, b in zip(before, model.buffers(), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(adversarial_batch(model, x, y, eps=0.0, steps=2), x)
    for kwargs in [{"eps": 1.5, "steps": 2}, {"eps": -0.1, "steps": 2}, {"eps": 0.1, "steps": 0},
                   {"eps": 0.1, "steps": 2, "attack": "cw"}, {"eps": 0.1, "steps": 2.5}]:
        with pytest.raises(UserError):
            adversarial_batch(model, x, y, **kwargs)


# -- TRADES -----------------------------------------------------------------------------------

def reference_trades(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """(CE, KL) written out from probabilities, image by image, in float64: no log_softmax, no
    cross_entropy, no batched reduction shared with the code under test."""
    ce = kl = torch.zeros((), dtype=DT)
    for i in range(x.shape[0]):
        a, b = model(x[i:i + 1])[0], model(x_adv[i:i + 1])[0]
        p = torch.exp(a - a.max()) / torch.exp(a - a.max()).sum()
        q = torch.exp(b - b.max()) / torch.exp(b - b.max()).sum()
        ce = ce - torch.log(p[y[i]])
        kl = kl + sum(p[c] * torch.log(p[c] / q[c]) for c in range(len(p)))
    return ce / x.shape[0], kl / x.shape[0]


def central_differences(model: nn.Module, f) -> list[Tensor]:
    """d f() / d every parameter by central differences (no autograd)."""
    step, out = 1e-6, []
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            num = torch.empty_like(flat)
            for j in range(flat.numel()):
                old = flat[j].item()
                flat[j] = old + step
                up = f()
                flat[j] = old - step
                down = f()
                flat[j] = old
                num[j] = (up - down) / (2 * step)
            out.append(num.view_as(p))
    return out


@pytest.mark.parametrize("make", [tiny_complex, tiny_real])
def test_trades_loss_and_gradient_match_an_independent_float64_computation(make):
    from cvgr.defenses import trades_loss

    model = make()
    x, y = batch(n=4)
    x_adv = 1 - x  # far from x, so the KL term is not negligible
    out = trades_loss(model, x, x_adv, y, beta=6.0)
    ce, kl = reference_trades(model, x, x_adv, y)
    assert out.ce.item() == pytest.approx(ce.item(), rel=1e-12)
    assert out.kl.item() == pytest.approx(kl.item(), rel=1e-12) and kl.item() > 1e-4
    assert out.total.item() == pytest.approx((ce + 6.0 * kl).item(), rel=1e-12)
    # parameter gradients of the total and of the KL term alone, against central differences
    # of the reference
    g_total = param_grads(model, out.total)
    g_kl = param_grads(model, trades_loss(model, x, x_adv, y, beta=6.0).kl)
    num_total = central_differences(model, lambda: sum(
        w * t for w, t in zip((1.0, 6.0), reference_trades(model, x, x_adv, y), strict=True)))
    num_kl = central_differences(model, lambda: reference_trades(model, x, x_adv, y)[1])
    for a, b in zip(g_total, num_total, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    for a, b in zip(g_kl, num_kl, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-10)
    assert sum(g.norm() for g in g_kl) > 1e-3  # the KL's gradient is really checked


def test_trades_gradient_flows_through_both_forwards():
    """The KL's gradient is taken through p(x) as well as p(x') (as published): it differs
    from the gradient with p(x) held constant."""
    from cvgr.defenses import trades_loss
    from cvgr.defenses.trades import kl_per_image

    model = tiny_real()
    x, y = batch(n=4)
    x_adv = (x + 0.2).clamp(0, 1)
    full = param_grads(model, trades_loss(model, x, x_adv, y, beta=1.0).kl)
    held = param_grads(model, kl_per_image(model(x).detach(), model(x_adv)).mean())
    diff = sum((a - b).norm() for a, b in zip(full, held, strict=True))
    assert diff > 1e-3 * sum(a.norm() for a in full)


@pytest.mark.parametrize("training", [True, False])
def test_trades_inner_maximisation_increases_the_kl(training):
    from cvgr.defenses import trades_batch
    from cvgr.defenses.trades import kl_per_image

    model, x, y = trained_mlp()
    model.train(training)
    eps = 0.2
    adv = {k: trades_batch(model, x, eps, k, generator=torch.Generator().manual_seed(1))
           for k in (1, 10)}
    assert model.training is training
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        clean = model(x)

        def kl(z: Tensor) -> float:
            return kl_per_image(clean, model(z)).mean().item()

        start = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        rand = (x + eps * (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
                           - 1)).clamp(0, 1)
        kl_start, kl_rand, kl1, kl10 = kl(start), kl(rand), kl(adv[1]), kl(adv[10])
    for a in adv.values():
        assert not a.requires_grad
        assert (a - x).abs().max() <= eps + 1e-6 and a.min() >= 0 and a.max() <= 1
    # the start is (almost) x, where the KL is 0; the ascent climbs far above it and above a
    # random point of the same ball, and more steps climb higher
    assert kl_start < 1e-5
    assert kl1 > 100 * kl_start
    assert kl10 > 10 * kl1 and kl10 > 0.3  # 10 steps of eps/4: 0.75 here, 1 step 0.012
    assert kl10 > 10 * kl_rand


def test_trades_default_step_is_a_quarter_of_eps():
    """One step from the seeded Gaussian start moves every pixel by exactly eps/4 (inputs kept
    away from the box and ball edges so nothing is clipped)."""
    from cvgr.defenses import trades_batch

    model, x, _ = trained_mlp()
    x = 0.3 + 0.4 * x  # inside [0.3, 0.7]
    eps = 0.2
    got = trades_batch(model, x, eps, 1, generator=torch.Generator().manual_seed(3))
    start = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    moved = (got - start).abs()
    assert moved.max().item() == pytest.approx(eps / 4, rel=1e-5)
    assert (moved > 0).float().mean() > 0.5  # most pixels have a non-zero KL gradient
    got2 = trades_batch(model, x, eps, 1, step=0.01, generator=torch.Generator().manual_seed(3))
    assert (got2 - start).abs().max().item() == pytest.approx(0.01, rel=1e-4)


def test_trades_bad_arguments_raise_user_error():
    from cvgr.defenses import trades_batch, trades_loss

    model, x, y = trained_mlp()
    for kwargs, param in [({"eps": 1.5, "steps": 2}, "adv_eps"),
                          ({"eps": -0.1, "steps": 2}, "adv_eps"),
                          ({"eps": 0.1, "steps": 0}, "adv_steps"),
                          ({"eps": 0.1, "steps": 2.5}, "adv_steps"),
                          ({"eps": 0.1, "steps": 2, "step": 0.0}, "step")]:
        with pytest.raises(UserError) as e:
            trades_batch(model, x, **kwargs)
        assert e.value.param == param and "\n" not in str(e.value)
    torch.testing.assert_close(trades_batch(model, x, 0.0, 3), x)
    for beta in [-1.0, math.nan, True]:
        with pytest.raises(UserError) as e:
            trades_loss(model, x, x, y, beta)
        assert e.value.param == "trades"
    with pytest.raises(UserError):
        trades_loss(model, x, x[:3], y, 6.0)
    with pytest.raises(UserError):
        trades_loss(model, x, x, y[:3], 6.0)


# -- the PGD training step rule ---------------------------------------------------------------

def test_pgd_training_moves_at_most_1_85_eps_in_all():
    """cvgr's PGD training rule is K steps of 1.85 eps / K (the paper's reference code), not
    Madry-style 2.5 eps / K: on a linear two-class model the input gradient's sign never
    changes, so a pixel walks from its random start in one direction until the ball's edge
    stops it; a pixel that starts near the far edge shows the whole walk, 1.85 eps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).to(DT)
    x = 0.3 + 0.4 * torch.rand(32, 1, 4, 4, dtype=DT)
    y = torch.randint(0, 2, (32,))
    eps, k = 0.1, 10
    adv = adversarial_batch(model, x, y, eps, k, generator=torch.Generator().manual_seed(4))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(4), dtype=DT)
    start = x + (2 * u - 1) * eps  # cvgr.attacks.common.random_in_ball, written out
    walk = (adv - start).abs()
    assert walk.max().item() == pytest.approx(1.85 * eps, rel=1e-9)  # 2.5 eps would show here
    assert ((adv - x).abs() <= eps + 1e-12).all()
