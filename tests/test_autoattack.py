"""AutoAttack versions: the authors' standard one, ART's subset, custom lists; the benchmark.

A tiny 10-class model is trained inside the test (the standard version targets 9 classes), on
1x8x8 images so that even the standard version's 5000 Square queries take seconds.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from cvgr import evaluate
from cvgr.attacks import pgd
from cvgr.errors import UserError
from masking_models import Masked

pytest.importorskip("pyautoattack")

# The standard version may be weaker than a single other attack on some image only by chance
# (it does not include ART's APGD-DLR, and random starts differ): 1 image in 20 (0.05).
TOLERANCE = 0.05


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten classes of 1x8x8 images: a fixed pattern per class plus noise, in [0, 1]."""
    g = torch.Generator().manual_seed(321)
    patterns = 0.2 + 0.6 * torch.rand(10, 1, 8, 8, generator=g)
    g.manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (patterns[y] + 0.1 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return x, y




@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    x, y = synthetic(1000, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic(20, seed=7)


def pgd_accuracy(model: nn.Module, x, y, eps: float) -> float:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return (model(pgd(model, x, y, eps, 8, generator=g)).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def standard(model, data):
    x, y = data
    return evaluate.autoattack(model, x, y, 0.1, version="standard", seed=3, progress=False,
                               return_examples=True)


def test_standard_is_the_authors_version_and_worst_case(model, data, standard):
    x, y = data
    res, x_adv = standard
    assert res["clean_accuracy"] >= 0.9  # the model learned; else the test proves nothing
    assert [a["attack"] for a in res["attacks"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    s = {a["attack"]: a["settings"] for a in res["attacks"]}
    assert s["apgd-ce"]["n_iter"] == 100 and s["apgd-ce"]["n_restarts"] == 1
    assert s["apgd-t"]["n_target_classes"] == 9 and s["apgd-t"]["n_iter"] == 100
    assert s["fab-t"]["n_target_classes"] == 9 and s["fab-t"]["n_restarts"] == 1
    assert s["square"]["n_queries"] == 5000 and s["square"]["p_init"] == 0.8
    assert res["libraries"]["pyautoattack"] == "0.2.0" and res["seed"] == 3
    accs = [a["robust_accuracy"] for a in res["attacks"]]
    assert accs == sorted(accs, reverse=True) and accs[0] <= res["clean_accuracy"]
    assert res["robust_accuracy"] == accs[-1]
    # each attack only on the images still robust
    assert res["attacks"][0]["attacked"] == len(res["correct_indices"])
    for prev, row in zip(res["attacks"], res["attacks"][1:], strict=False):
        assert row["attacked"] == round(prev["robust_accuracy"] * len(x))
    # every example in the eps-ball and the box; survivors are exactly the images still right
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        right = (model(x_adv).argmax(1) == y).nonzero().squeeze(1).tolist()
    assert right == res["robust_indices"]
    assert len(right) == round(res["robust_accuracy"] * len(x))


def spy_calls(monkeypatch) -> list[list[str]]:
    """Record the attack list of every call of the authors' run_standard_evaluation."""
    from pyautoattack import AutoAttack

    calls: list[list[str]] = []
    real = AutoAttack.run_standard_evaluation

    def spy(self, *args, **kwargs):
        calls.append(list(self.attacks_to_run))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", spy)
    return calls


def test_standard_equals_the_authors_api_image_for_image(model, data, monkeypatch, caplog):
    from pyautoattack import AutoAttack

    x, y = data
    eps = 0.12  # here APGD-CE and APGD-T each fool images: the per-attack rows are tested
    calls = spy_calls(monkeypatch)
    res, x_adv = evaluate.autoattack(model, x, y, eps, version="standard", seed=4,
                                     batch_size=8, progress=False, return_examples=True)
    assert calls == [["apgd-ce", "apgd-t", "fab-t", "square"]]  # one call, the authors' list
    caplog.set_level(logging.DEBUG, logger="auto-attack")
    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=4, device="cpu")
    adv, y_adv = aa.run_standard_evaluation(x, y, batch_size=8)
    assert torch.equal(x_adv, adv)
    assert res["robust_indices"] == (y_adv == y).nonzero().squeeze(1).tolist()
    reported = [r.getMessage().split(" (total")[0] for r in caplog.records
                if r.getMessage().startswith("robust accuracy after")]
    assert reported == [f"robust accuracy after {a['attack'].upper()}: "
                        f"{a['robust_accuracy']:.2%}" for a in res["attacks"]]
    accs = [a["robust_accuracy"] for a in res["attacks"]]
    assert accs[0] > accs[1] and accs[0] < res["clean_accuracy"]  # two attacks contributed


def test_custom_runs_the_authors_list_in_as_few_calls_as_its_settings_allow(model, data,
                                                                           monkeypatch):
    x, y = data
    calls = spy_calls(monkeypatch)
    one = "apgd-ce:steps=5,apgd-dlr:steps=5,square:queries=20"
    res = evaluate.autoattack(model, x, y, 0.12, version="custom", attacks=one, progress=False)
    assert calls == [["apgd-ce", "apgd-dlr", "square"]]
    assert [r["settings"]["n_iter"] for r in res["attacks"][:2]] == [5, 5]
    calls.clear()
    # APGD-CE and APGD-DLR share one object in the authors' code: other steps, another call
    evaluate.autoattack(model, x, y, 0.12, version="custom", progress=False,
                        attacks="apgd-ce:steps=5,apgd-dlr:steps=6,apgd-ce:steps=7")
    assert calls == [["apgd-ce"], ["apgd-dlr"], ["apgd-ce"]]


def test_standard_at_most_pgd_and_art(model, data, standard):
    pytest.importorskip("art")
    x, y = data
    res = standard[0]
    ours = pgd_accuracy(model, x, y, 0.1)
    assert 0 < res["robust_accuracy"] <= ours + TOLERANCE, (res["robust_accuracy"], ours)
    art = evaluate.autoattack(model, x, y, 0.1, version="art", seed=3, progress=False)
    assert [a["attack"] for a in art["attacks"]] == ["art-apgd-ce", "art-apgd-dlr", "art-square"]
    assert art["attacks"][2]["settings"]["queries"] == 1000
    assert "adversarial-robustness-toolbox" in art["libraries"]
    assert res["robust_accuracy"] <= art["robust_accuracy"] + TOLERANCE


def test_one_seed_gives_one_result(model, data):
    # the authors' four attack kinds with small settings: same code paths, a tenth of the time
    x, y = data
    cheap = "apgd-ce:steps=20,apgd-t:steps=20:targets=3,fab-t:steps=20:targets=3,square:queries=300"
    runs = [evaluate.autoattack(model, x, y, 0.12, version="custom", attacks=cheap, seed=5,
                                progress=False, return_examples=True) for _ in range(2)]
    (a, xa), (b, xb) = runs
    assert a["robust_indices"] == b["robust_indices"] and torch.equal(xa, xb)
    assert [r["robust_accuracy"] for r in a["attacks"]] == \
        [r["robust_accuracy"] for r in b["attacks"]]
    assert a["robust_accuracy"] < a["clean_accuracy"]  # something happened to agree on
    assert a["attacks"][1]["settings"]["n_target_classes"] == 3


def test_undefended_model_falls_at_large_eps(model, data):
    x, y = data
    res = evaluate.autoattack(model, x, y, 0.5, version="standard", progress=False)
    assert res["clean_accuracy"] >= 0.9 and res["robust_accuracy"] <= 0.05


def test_masked_model_is_broken_by_standard_not_by_pgd(model, data):
    x, y = data
    masked = Masked(model)
    eps = 0.25
    ours = pgd_accuracy(masked, x, y, eps)
    res = evaluate.autoattack(masked, x, y, eps, version="standard", progress=False)
    assert ours >= 0.5, ours  # PGD sees no gradient: it is fooled by the masking
    assert res["robust_accuracy"] <= 0.1, res["attacks"]
    # the black-box Square attack is what breaks it; the authors' checks flag zero gradients
    square = next(a for a in res["attacks"] if a["attack"] == "square")
    assert square["attacked"] > 0
    assert any("zero gradient" in f for f in res["flags"])


def test_custom_records_settings_and_mixes_libraries(model, data):
    pytest.importorskip("art")
    x, y = data
    res = evaluate.autoattack(model, x, y, 0.1, version="custom",
                              attacks="apgd-ce:steps=10,art-square:queries=20,square:queries=30",
                              progress=False)
    assert res["version"] == "custom"
    rows = res["attacks"]
    assert [r["attack"] for r in rows] == ["apgd-ce", "art-square", "square"]
    assert rows[0]["settings"]["n_iter"] == 10 and rows[0]["settings"]["n_restarts"] == 1
    assert rows[1]["settings"] == {"queries": 20} and rows[1]["library"] == "art"
    assert rows[2]["settings"]["n_queries"] == 30
    dicts = evaluate.autoattack(model, x, y, 0.1, version="custom", progress=False,
                                attacks=[{"attack": "apgd-ce", "steps": 10}])
    assert dicts["attacks"][0]["robust_accuracy"] == rows[0]["robust_accuracy"]


def test_refusals(model, data):
    x, y = data
    cases = [
        (dict(version="strong"), "unknown AutoAttack version"),
        (dict(version="standard", attacks="apgd-ce"), "version='custom'"),
        (dict(version="custom"), "needs attacks"),
        (dict(version="custom", attacks="fgsm"), "unknown attack 'fgsm'"),
        (dict(version="custom", attacks="apgd-ce:queries=5"), "no setting"),
        (dict(version="custom", attacks="square:queries=0"), "out of range"),
        (dict(version="custom", attacks="apgd-ce:steps=x"), "must be a number"),
        (dict(version="custom", attacks="apgd-t:targets=10"), "targets <= 9"),
        (dict(version="custom", attacks="fab-t:restarts=2"), "no setting"),
    ]
    for kw, msg in cases:
        with pytest.raises(UserError, match=msg):
            evaluate.autoattack(model, x, y, 0.1, progress=False, **kw)
    four = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with pytest.raises(UserError, match="at least 10"):
        evaluate.autoattack(four, x, y % 4, 0.1, progress=False)
    with pytest.raises(UserError, match="eps"):
        evaluate.autoattack(model, x, y, 2.0, progress=False)


def test_missing_library_is_a_clear_user_error(model, data, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    x, y = data
    with pytest.raises(UserError, match=r"pip install cvgr\[autoattack\]"):
        evaluate.autoattack(model, x, y, 0.1, progress=False)
