"""Evaluation library: curves, transfer matrices, masking checks, ART bridge, files, plots."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from cvgr import evaluate
from cvgr.attacks import pgd
from cvgr.errors import UserError
from masking_models import Masked


def synthetic(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 1x8x8 images: a fixed pattern per class plus noise, in [0, 1]."""
    g = torch.Generator().manual_seed(123)
    patterns = 0.2 + 0.6 * torch.rand(4, 1, 8, 8, generator=g)
    g.manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = (patterns[y] + 0.1 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return x, y


def train(seed: int = 0, steps: int = 150) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 4))
    x, y = synthetic(512, seed=100 + seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()




@pytest.fixture(scope="module")
def model():
    return train()


@pytest.fixture(scope="module")
def data():
    return synthetic(120, seed=7)


def test_parse_eps():
    assert evaluate.parse_eps("0:0.3:0.02") == [round(0.02 * i, 10) for i in range(16)]
    cifar = evaluate.parse_eps("0:0.031373:0.0039216")  # 0 to 8/255 by 1/255
    assert len(cifar) == 9 and cifar[-1] == pytest.approx(8 / 255, abs=1e-6)
    assert evaluate.parse_eps("0.1,0.2") == [0.1, 0.2]
    assert evaluate.parse_eps("0.25") == [0.25]
    for bad in ("a:b", "0:0.3", "0.3:0:0.1", "0:1:0", "x"):
        with pytest.raises(UserError, match="eps"):
            evaluate.parse_eps(bad)


def test_evaluate_package_init_only_reexports():
    """evaluate/__init__.py holds imports and __all__, no logic; parse_eps lives in curves."""
    import ast
    from pathlib import Path

    from cvgr.evaluate import curves

    tree = ast.parse(Path(evaluate.__file__).read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr)  # the docstring
                                         and isinstance(n.value, ast.Constant))]
    kinds = {type(n).__name__ for n in body}
    assert kinds <= {"Import", "ImportFrom", "Assign"}, kinds
    assert [t.id for n in body if isinstance(n, ast.Assign) for t in n.targets] == ["__all__"]
    assert evaluate.parse_eps is curves.parse_eps


def test_robustness_curve_matches_direct_attack_and_batching(model, data):
    x, y = data
    eps = [0.0, 0.05, 0.1, 0.2]
    curve, ex = evaluate.robustness_curve(model, x, y, "pgd", eps, batch_size=7, steps=5,
                                          random_start=False, progress=False,
                                          return_examples=True)
    assert curve["eps"] == eps and curve["n_images"] == len(x)
    assert curve["options"] == {"norm": "linf", "steps": 5, "random_start": False}
    clean = (model(x).argmax(1) == y).float().mean().item()
    assert clean > 0.9
    assert curve["accuracy"][0] == pytest.approx(clean)
    for e, acc, loss, xa in zip(eps, curve["accuracy"], curve["loss"], ex, strict=True):
        direct = pgd(model, x, y, e, 5, random_start=False)  # one batch, no evaluate code
        with torch.no_grad():
            out = model(direct)
        assert acc == pytest.approx((out.argmax(1) == y).float().mean().item(), abs=1e-6)
        assert loss == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-4)
        assert torch.allclose(xa, direct, atol=1e-6)
    assert curve["accuracy"][-1] < 0.5 * clean
    assert all(b <= a + 1e-9 for a, b in zip(curve["accuracy"], curve["accuracy"][1:],
                                              strict=False))


def test_robustness_curve_is_seeded(model, data):
    x, y = data
    a = evaluate.robustness_curve(model, x, y, "pgd", [0.1], steps=2, seed=3, progress=False)
    b = evaluate.robustness_curve(model, x, y, "pgd", [0.1], steps=2, seed=3, progress=False)
    assert a == b
    with pytest.raises(UserError, match="eps"):
        evaluate.robustness_curve(model, x, y, "pgd", [0.1, 1.2], progress=False)
    with pytest.raises(UserError, match="unknown attack"):
        evaluate.robustness_curve(model, x, y, "cw", [0.1], progress=False)


def test_transfer_matrix_against_direct_computation(data):
    x, y = data
    models = {"A": train(0), "B": train(1, steps=60)}
    m = evaluate.transfer_matrix(models, x, y, 0.15, steps=4, random_start=False,
                                 progress=False, batch_size=50)
    assert m["sources"] == m["targets"] == ["A", "B"]
    for i, s in enumerate("AB"):
        xa = pgd(models[s], x, y, 0.15, 4, random_start=False)
        for j, t in enumerate("AB"):
            with torch.no_grad():
                want = (models[t](xa).argmax(1) == y).float().mean().item()
            assert m["accuracy"][i][j] == pytest.approx(want, abs=1e-6)
    # white-box (diagonal) beats transfer here, so no masking flag
    assert m["accuracy"][0][0] <= m["accuracy"][1][0]
    assert m["masking"]["flagged"] is False


def test_transfer_flags_on_a_handmade_matrix():
    mat = {"sources": ["A", "B"], "targets": ["A", "B"], "accuracy": [[0.30, 0.10], [0.5, 0.2]]}
    f = evaluate.transfer_flags(mat)
    assert f["flagged"] and f["stronger"] == [{"source": "A", "target": "B",
                                               "transfer_accuracy": 0.10,
                                               "white_box_accuracy": 0.2}]
    mat["accuracy"][0][1] = 0.195
    assert not evaluate.transfer_flags(mat)["flagged"]  # within tolerance


def test_masking_checks_pass_a_healthy_model(model, data, capsys):
    x, y = data
    r = evaluate.masking_checks(model, x, y, 0.1, nes_images=40, nes_queries=50,
                                progress=False)
    assert r["ok"] and r["flagged"] == [], r
    c = r["checks"]
    assert c["large_eps_not_broken"]["accuracy"] <= 0.1
    losses = c["loss_not_rising"]["loss"]
    assert losses[-1] > c["loss_not_rising"]["clean_loss"]
    nes_r = c["black_box_stronger"]["black_box"]["nes"]
    assert nes_r["n_images"] == 40 and nes_r["accuracy"] >= nes_r["white_box_accuracy"] - 0.01
    evaluate.print_checks(r)
    out = capsys.readouterr().out
    assert "no sign of gradient masking" in out and "FLAG" not in out


def test_masking_checks_catch_a_masked_model(model, data, capsys):
    x, y = data
    masked = Masked(model)
    r = evaluate.masking_checks(masked, x, y, 0.2, nes_images=40, nes_queries=50,
                                progress=False, black_box_accuracy={"transfer": 0.0})
    assert {"black_box_stronger", "loss_not_rising", "large_eps_not_broken"} <= set(r["flagged"])
    bb = r["checks"]["black_box_stronger"]
    assert set(bb["stronger"]) == {"nes", "transfer"}
    assert bb["black_box"]["nes"]["fooled_only_by_black_box"] > 0
    assert r["checks"]["loss_not_rising"]["no_gain_over_clean"]
    evaluate.print_checks(r)
    assert "[FLAG]" in capsys.readouterr().out


def test_examples_round_trip_and_refusals(tmp_path, data):
    x, y = data
    xs = [x, (x + 0.1).clamp(0, 1)]
    p = evaluate.save_examples(tmp_path / "ex.npz", xs, y, [0.0, 0.1], dataset="toy",
                               attack="pgd", source={"arch": "mlp"}, options={"steps": 3})
    with np.load(p, allow_pickle=False) as z:  # no object arrays inside
        assert z["x"].dtype == np.float32 and z["x"].shape == (2, *x.shape)
    ex = evaluate.load_examples(p, shape=(1, 8, 8), dataset="toy")
    assert torch.equal(ex["x"][1], xs[1]) and torch.equal(ex["y"], y)
    assert ex["eps"] == [0.0, 0.1] and ex["source"] == {"arch": "mlp"}
    assert ex["attack"] == "pgd" and ex["options"] == {"steps": 3}
    q = evaluate.save_examples(tmp_path / "q.npz", x, y, 0.1, dataset="toy", attack="fgsm",
                               uint8=True)
    assert (evaluate.load_examples(q)["x"][0] - x).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(UserError, match="dataset 'toy'"):
        evaluate.load_examples(p, dataset="fashion-mnist")
    with pytest.raises(UserError, match=r"shaped \(1, 8, 8\)"):
        evaluate.load_examples(p, shape=(1, 28, 28))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable"):
        evaluate.load_examples(tmp_path / "junk.npz")
    with pytest.raises(UserError, match="no such"):
        evaluate.load_examples(tmp_path / "missing.npz")


def test_plots_write_png(tmp_path):
    c = {"eps": [0, 0.1], "accuracy": [0.9, 0.4], "options": {"norm": "linf"}}
    p = evaluate.plot_curves({"real": c, "complex": c}, tmp_path / "c.png", title="t")
    m = evaluate.plot_matrix({"sources": ["A", "B"], "targets": ["A", "B"],
                              "accuracy": [[0.1, 0.5], [0.6, 0.2]], "eps": 0.1, "steps": 8},
                             tmp_path / "sub" / "m.png")
    for f in (p, m):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_art_version_worst_case(model, data):
    pytest.importorskip("art")
    x, y = data
    x, y = x[:60], y[:60]
    r = evaluate.autoattack(model, x, y, 0.1, version="custom", batch_size=64, progress=False,
                            attacks="art-apgd-ce:steps=10,art-apgd-dlr:steps=10,"
                                    "art-square:queries=50")
    accs = [a["robust_accuracy"] for a in r["attacks"]]
    assert [a["attack"] for a in r["attacks"]] == ["art-apgd-ce", "art-apgd-dlr", "art-square"]
    assert accs == sorted(accs, reverse=True) and accs[0] <= r["clean_accuracy"]
    assert r["robust_accuracy"] == accs[-1]
    with torch.no_grad():
        ours = (model(pgd(model, x, y, 0.1, 8)).argmax(1) == y).float().mean().item()
    assert r["robust_accuracy"] <= ours + 0.05  # APGD is at least about as strong as PGD-8
    assert "adversarial-robustness-toolbox" in r["libraries"]


def test_missing_art_is_a_clear_user_error(model, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "art", None)  # import art -> ImportError
    x, y = data
    with pytest.raises(UserError, match=r"pip install cvgr\[attack\]"):
        evaluate.autoattack(model, x, y, 0.1, version="art")
