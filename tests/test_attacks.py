"""Attacks against independent computations: closed forms, ART, true gradients, ball geometry."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cvgr.attacks
from cvgr.attacks import ATTACKS, fgsm, nes, nes_gradient, pgd
from cvgr.errors import UserError

FASHION = Path("/usr/share/datasets/fashion-mnist")
TOL = 1e-5  # float32 rounding of (x + delta) - x


def mlp(d: int, classes: int = 3, seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 16), nn.Tanh(),
                         nn.Linear(16, classes)).to(dtype)


class Binary(nn.Module):
    """Linear two-class model: logits (0, w.x + b); the loss of class 0 rises with w.x."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


def assert_in_ball(xa, x, eps, norm):
    assert xa.shape == x.shape and xa.dtype == x.dtype
    assert xa.min() >= 0 and xa.max() <= 1
    d = (xa - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + TOL).all(), (size.max().item(), eps)


# --- containment: every attack, many shapes and radii ---------------------------------------

shapes = st.sampled_from([(1, 4, 4), (3, 5, 3), (2, 8, 8), (12,)])


@settings(max_examples=30, deadline=None)
@given(shape=shapes, n=st.integers(1, 6), eps=st.floats(0, 1), steps=st.integers(1, 4),
       norm=st.sampled_from(["linf", "l2"]), kind=st.sampled_from(["fgsm", "pgd", "nes"]),
       seed=st.integers(0, 2**16))
def test_attacks_stay_in_ball_and_box(shape, n, eps, steps, norm, kind, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=g)
    x[0].view(-1)[0] = 0.0  # pixels on the box's faces
    x[-1].view(-1)[-1] = 1.0
    y = torch.randint(0, 3, (n,), generator=g)
    d = int(np.prod(shape))
    if norm == "l2":
        eps = eps * 3
    model = mlp(d, seed=seed % 7)
    model.train()
    if kind == "fgsm":
        xa = fgsm(model, x, y, eps, norm=norm)
    elif kind == "pgd":
        xa = pgd(model, x, y, eps, steps, norm=norm, restarts=2, generator=g)
    else:
        xa = nes(model, x, y, eps, steps, queries=4, norm=norm, random_start=True, generator=g)
    assert_in_ball(xa, x, eps, norm)
    assert model.training, "the model's mode must be restored"


def test_attacks_run_in_eval_mode_and_leave_parameters_alone():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    model = nn.Sequential(Spy(), nn.Flatten(), nn.Linear(16, 3), nn.Dropout(0.5))
    model.train()
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    for attack in (lambda: fgsm(model, x, y, 0.1), lambda: pgd(model, x, y, 0.1, 3),
                   lambda: nes(model, x, y, 0.1, 2, queries=3)):
        seen.clear()
        attack()
        assert seen and not any(seen)
        assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_bad_eps_and_norm_are_user_errors():
    model, x, y = mlp(16), torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    for bad in (-0.1, 1.5, float("nan")):
        for f in (fgsm, pgd, nes):
            with pytest.raises(UserError, match="eps"):
                f(model, x, y, bad)
    with pytest.raises(UserError, match="norm"):
        pgd(model, x, y, 0.1, norm="l3")
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        pgd(model, x * 2, y, 0.1)
    assert pgd(model, x, y, 1.5, norm="l2").shape == x.shape  # L2 radii above 1 are fine


def test_eps_zero_returns_the_images():
    model, x, y = mlp(16), torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    for f in (fgsm, pgd, nes):
        assert torch.equal(f(model, x, y, 0.0), x)


# --- closed forms on linear models ----------------------------------------------------------

def _binary_case(d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    w[:4] = 0.0  # coordinates with no gradient must not move
    x = torch.rand(5, d, generator=g, dtype=torch.float64)
    x[:, 4:12] = torch.tensor([0.0, 1.0, 0.01, 0.99, 0.0, 1.0, 0.02, 0.98], dtype=torch.float64)
    return Binary(w), x, torch.zeros(5, dtype=torch.long)


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_pgd_linf_reaches_closed_form_worst_case_of_linear_model(eps):
    model, x, y = _binary_case()
    w = model.w.detach()
    worst = (x + eps * w.sign()).clamp(0, 1)  # maximiser of w.x over ball and box
    best_margin = worst @ w
    xa = pgd(model, x, y, eps, steps=10, random_start=False)
    assert torch.allclose(xa @ w, best_margin, atol=1e-9)
    assert torch.allclose(xa, worst, atol=1e-12)
    # from a random start the default step (1.85 eps total) cannot always cross the cube;
    # a larger step reaches the corner from anywhere inside the ball
    g = torch.Generator().manual_seed(1)
    xr = pgd(model, x, y, eps, steps=10, step_size=0.25 * eps, generator=g)
    assert torch.allclose(xr @ w, best_margin, atol=1e-9)
    # FGSM is one full step: the same corner for a linear model
    assert torch.allclose(fgsm(model, x, y, eps), worst, atol=1e-12)


def test_pgd_l2_reaches_closed_form_worst_case_away_from_the_box():
    model, x, y = _binary_case()
    w = model.w.detach()
    x = 0.4 + 0.2 * x  # inside [0.4, 0.6]: an L2 step of 0.2 never touches the box
    eps = 0.2
    xa = pgd(model, x, y, eps, steps=10, random_start=False, norm="l2")
    assert torch.allclose(xa @ w, x @ w + eps * w.norm(), atol=1e-9)
    assert torch.allclose(xa, x + eps * w / w.norm(), atol=1e-9)


def test_restarts_keep_the_first_fooling_perturbation():
    model = mlp(16, seed=3)
    with torch.no_grad():  # a steeper model, and tiny steps: the random start decides
        model[1].weight.mul_(8)
        model[3].weight.mul_(4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 4, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    kw = {"steps": 1, "step_size": 0.01}
    one = pgd(model, x, y, 0.3, **kw, generator=torch.Generator().manual_seed(5))
    many = pgd(model, x, y, 0.3, **kw, restarts=8, generator=torch.Generator().manual_seed(5))
    fooled_one = model(one).argmax(1) != y
    fooled_many = model(many).argmax(1) != y
    assert (fooled_many | ~fooled_one).all(), "a restart must not undo a success"
    assert torch.equal(many[fooled_one], one[fooled_one]), "first success is kept"
    assert fooled_many.sum() > fooled_one.sum(), "restarts should add successes here"


def test_each_attack_has_one_documented_api_called_alike():
    """One public API per attack (no class restating the function's parameters), documented
    like torch.nn (Args / Shape / Example), every one called as fn(model, x, y, eps,
    generator=...)."""
    for name in ("FGSM", "PGD", "NES"):
        assert not hasattr(cvgr.attacks, name)
    model, x, y = mlp(16), torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    for name, fn in ATTACKS.items():
        doc = fn.__doc__ or ""
        assert all(h in doc for h in ("Args:", "Shape:", "Example::")), name
        a = fn(model, x, y, 0.1, generator=torch.Generator().manual_seed(0))
        b = fn(model, x, y, 0.1, generator=torch.Generator().manual_seed(0))
        assert a.shape == x.shape and torch.equal(a, b), name
    with pytest.raises(TypeError):
        pgd(model, x, y, 0.1, 3, None)  # options after steps are keywords only


def test_one_attacks_table_autoattack_components_named_apart():
    """`ATTACKS` is cvgr's attack functions only; AutoAttack's components have their own name."""
    import cvgr.evaluate
    from cvgr.evaluate.autoattack import AUTOATTACK_COMPONENTS, parse_attacks

    assert not hasattr(cvgr.evaluate, "ATTACKS")
    assert not hasattr(cvgr.evaluate.autoattack, "ATTACKS")
    assert set(ATTACKS) == {"fgsm", "pgd", "nes"}
    assert [a["attack"] for a in parse_attacks(",".join(AUTOATTACK_COMPONENTS))] \
        == list(AUTOATTACK_COMPONENTS)


# --- NES -------------------------------------------------------------------------------------

def test_nes_gradient_estimate_points_along_true_gradient():
    model = mlp(48, classes=5, seed=1, dtype=torch.float64)
    x = torch.rand(6, 3, 4, 4, dtype=torch.float64)
    y = torch.arange(6) % 5
    xg = x.clone().requires_grad_(True)
    true = torch.autograd.grad(nn.functional.cross_entropy(model(xg), y, reduction="sum"),
                               xg)[0]
    est = nes_gradient(model, x, y, queries=2000, sigma=1e-3,
                       generator=torch.Generator().manual_seed(0))
    cos = nn.functional.cosine_similarity(est.flatten(1), true.flatten(1))
    assert (cos > 0.9).all(), cos  # ~ sqrt(q / (q + d)) = 0.98 for a smooth model
    # unbiased in scale too: the projection onto the true gradient matches its norm
    scale = (est * true).flatten(1).sum(1) / true.flatten(1).norm(dim=1) ** 2
    assert ((scale - 1).abs() < 0.15).all(), scale
    few = nes_gradient(model, x, y, queries=20, generator=torch.Generator().manual_seed(0))
    cos_few = nn.functional.cosine_similarity(few.flatten(1), true.flatten(1))
    assert cos_few.mean() < cos.mean()  # more probes, better estimate


def test_nes_never_differentiates_the_model():
    class NoGrad(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = mlp(16)

        def forward(self, x):
            assert not torch.is_grad_enabled(), "NES must only query the model"
            return self.inner(x)

    model = NoGrad()
    model.register_full_backward_hook(lambda *a: pytest.fail("backward called"))
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    with torch.enable_grad():
        xa = nes(model, x, y, 0.2, steps=3, queries=10)
    assert_in_ball(xa, x, 0.2, "linf")
    assert not xa.requires_grad


# --- against a maintained library on a small trained model ----------------------------------

def _idx(path: Path, n: int) -> np.ndarray:
    """First n records of a gzipped IDX file (big-endian header, then uint8 data)."""
    with gzip.open(path, "rb") as f:
        head = f.read(4)
        dims = [int.from_bytes(f.read(4), "big") for _ in range(head[3])]
        dims[0] = min(n, dims[0])
        return np.frombuffer(f.read(int(np.prod(dims))), np.uint8).reshape(dims)


def fashion(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First n Fashion-MNIST images of a split, read here independently of cvgr.data."""
    pre = "train" if split == "train" else "t10k"
    x = _idx(FASHION / f"{pre}-images-idx3-ubyte.gz", n)
    y = _idx(FASHION / f"{pre}-labels-idx1-ubyte.gz", n)
    return (torch.from_numpy(x.astype(np.float32) / 255).unsqueeze(1),
            torch.from_numpy(y.astype(np.int64)))


def trained_fashion_mlp(steps: int = 200, seed: int = 0, arch: str | None = None) -> nn.Module:
    """A small MLP (or cvgr architecture `arch`) after a few hundred SGD steps on Fashion-MNIST.

    About 75-80% test accuracy: enough structure for attacks to be meaningful.
    """
    from cvgr.models import create_model

    torch.manual_seed(seed)
    if arch is None:
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    else:
        model = create_model(arch)
    x, y = fashion("train", 64 * steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for i in range(steps):
        xb, yb = x[64 * i:64 * (i + 1)], y[64 * i:64 * (i + 1)]
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def fashion_model():
    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)")
    return trained_fashion_mlp()


def test_pgd_at_least_as_strong_as_art_pgd(fashion_model):
    pytest.importorskip("art")
    from cvgr.evaluate import art_pgd

    x, y = fashion("test", 300)
    eps, steps = 0.06, 8
    step = 1.85 * eps / steps
    clean = (fashion_model(x).argmax(1) == y).float().mean().item()
    assert clean > 0.65
    ours = pgd(fashion_model, x, y, eps, steps, random_start=False)
    theirs = art_pgd(fashion_model, x, y, eps, steps, step)
    assert_in_ball(theirs, x, eps, "linf")
    ok_ours = fashion_model(ours).argmax(1) == y
    ok_theirs = fashion_model(theirs).argmax(1) == y
    assert ok_ours.float().mean() < clean - 0.2, "the attack must do real damage"
    assert ok_ours.float().mean() <= ok_theirs.float().mean()
    # same trajectory, and we keep any fooling iterate: ART's successes are ours too
    assert (~ok_theirs & ok_ours).sum() <= 2  # float32 rounding may split a tie or two


def test_nes_does_real_damage_on_trained_model(fashion_model):
    x, y = fashion("test", 60)
    xa = nes(fashion_model, x, y, 0.1, steps=8, queries=50,
             generator=torch.Generator().manual_seed(0))
    assert_in_ball(xa, x, 0.1, "linf")
    clean = (fashion_model(x).argmax(1) == y).float().mean()
    adv = (fashion_model(xa).argmax(1) == y).float().mean()
    assert adv <= clean - 0.15
