"""The training loop and run directories, on tiny Fashion-MNIST runs (256 images, CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import cvgr
from cvgr.checkpoint import CheckpointError, read_record
from cvgr.data import find
from cvgr.errors import UserError
from cvgr.train import TrainConfig, TrainingDiverged, train

FMNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").exists(),
                                reason="Fashion-MNIST files not installed")

TINY = {"dataset": "fashion-mnist", "train_images": 128, "test_images": 64, "batch_size": 32}


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, "arch": "MNISTNetV0", "epochs": 1, **kw})


def run(cfg: TrainConfig, out: Path, **kw) -> dict:
    return train(cfg, out, progress=False, quiet=True, device="cpu", data_root=FMNIST, **kw)


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_gr_noise_run_writes_everything(tmp_path):
    out = tmp_path / "c"
    cfg = tiny(arch="MNISTNetV1", complex=True, beta=1.0, noise=0.05, epochs=2, seed=3)
    final = run(cfg, out)
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.jsonl",
                                               "model.safetensors", "state.safetensors",
                                               ".cvgr.lock"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1] == final
    for r in rows:
        for k in ("ce", "gr", "train_acc", "val_acc", "val_loss", "cos", "seconds", "lr"):
            assert r[k] is not None and math.isfinite(r[k]), k
        assert r["gr"] > 0 and -1 <= r["cos"] <= 1 and 0 <= r["val_acc"] <= 1
    model = cvgr.load(out)
    rec = model.record
    assert (rec["arch"], rec["complex"], rec["dataset"], rec["seed"], rec["epochs"]) == (
        "mnist-cnn-groupsum", True, "fashion-mnist", 3, 2)
    assert rec["defense"] == {"name": "gr+noise", "beta": 1.0, "q": 1, "gr_mode": "exact",
                              "fd_h": None, "noise": 0.05}
    assert rec["metrics"] == final and rec["finished"] and "torch" in rec["versions"]
    stored = json.loads((out / "config.json").read_text())
    assert TrainConfig.from_dict(stored["config"]) == cfg.resolved()
    assert "--beta 1.0" in stored["command"] and "--complex" in stored["command"]

    # A finished run is not retrained: same metrics back, nothing rewritten.
    before = snapshot(out)
    assert run(cfg, out) == final and run(cfg, out, resume=True) == final
    assert snapshot(out) == before


def test_seed_repeats_and_matters(tmp_path):
    cfg = tiny(noise=0.1)
    rng = torch.get_rng_state()
    a, b = run(cfg, tmp_path / "a"), run(cfg, tmp_path / "b")
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is left alone
    wa = load_file(tmp_path / "a/model.safetensors")
    wb = load_file(tmp_path / "b/model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["ce"] == b["ce"]
    run(tiny(noise=0.1, seed=1), tmp_path / "c")
    wc = load_file(tmp_path / "c/model.safetensors")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.parametrize("defense", [
    {"adv_eps": 0.1, "adv_steps": 2},
    {"beta": 4.0, "noise": 0.05, "arch": "MNISTNetV1", "complex": True},
])
def test_resume_ends_with_the_same_weights(tmp_path, defense):
    cfg = tiny(epochs=3, milestones=(2,), **defense)
    run(cfg, tmp_path / "full")

    class Crash(Exception):
        pass

    def crash_after_two(row: dict) -> None:
        if row["epoch"] == 2:
            raise Crash

    part = tmp_path / "part"
    with pytest.raises(Crash):
        run(cfg, part, callback=crash_after_two)
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 2
    assert read_record(part)["epochs_completed"] == 2 and not read_record(part)["finished"]
    with pytest.raises(UserError, match="resume to continue") as e:  # no resume: refused
        run(cfg, part)
    assert e.value.param == "resume"
    final = run(cfg, part, resume=True)

    wf, wp = load_file(tmp_path / "full/model.safetensors"), load_file(part / "model.safetensors")
    assert wf.keys() == wp.keys() and all(torch.equal(wf[k], wp[k]) for k in wf)
    full_rows = (tmp_path / "full/metrics.jsonl").read_text().splitlines()
    part_rows = (part / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(r).items() if "seconds" not in k} for r in full_rows]
    assert strip == [{k: v for k, v in json.loads(r).items() if "seconds" not in k}
                     for r in part_rows]
    assert final["epoch"] == 3


def test_different_run_in_the_directory_is_refused_untouched(tmp_path):
    out = tmp_path / "r"
    run(tiny(), out)
    before = snapshot(out)
    with pytest.raises(UserError, match=r"holds a different run \(beta") as e:
        run(tiny(beta=2.0), out, resume=True)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"trades 0.0 there, 6.0 asked"):
        run(tiny(trades=6.0, adv_eps=0.1), out)
    assert snapshot(out) == before
    if find("svhn")[0] is None:  # no dataset: refused before anything is written
        with pytest.raises(UserError, match="svhn"):
            run(tiny(dataset="svhn"), tmp_path / "nodata")
        assert not (tmp_path / "nodata").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no cvgr run"):
        run(tiny(), tmp_path / "other")
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    real, cplx = tmp_path / "real", tmp_path / "cplx"
    cfg = tiny(epochs=2)
    with pytest.raises(RuntimeError):
        run(cfg, real, callback=lambda row: (_ for _ in ()).throw(RuntimeError("stop")))
    run(tiny(arch="MNISTNetV1", complex=True), cplx)
    (real / "state.safetensors").write_bytes((cplx / "state.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="checkpoint of a complex mnist-cnn-groupsum"):
        run(cfg, real, resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "nan"
    # Epoch 1 trains normally; the lr then jumps by 1e30 and the loss blows up in epoch 2.
    cfg = tiny(epochs=2, milestones=(1,), lr_gamma=1e30)
    with pytest.raises(TrainingDiverged, match=r"(nan|inf) in epoch 2, batch \d+") as e:
        run(cfg, out)
    assert "\n" not in str(e.value) and "last good checkpoint" in str(e.value)
    rec = read_record(out)
    assert rec["epochs_completed"] == 1 and not rec["finished"]
    w = load_file(out / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in w.values())
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


CPLX = {"arch": "MNISTNetV1", "complex": True}
PGD2 = {"adv_eps": 0.1, "adv_steps": 2}


@pytest.mark.parametrize("defense", [
    {},
    {"adv_eps": 0.1, "adv_kind": "fgsm"},
    {"beta": 8.0, "gr_mode": "fd", **CPLX},
    {"beta": 8.0, "gr_mode": "reference", **CPLX, "q": 2},
    # every defense on both kinds of net: PGD AT, TRADES, GR + PGD AT
    PGD2, {**PGD2, **CPLX},
    {"trades": 6.0, **PGD2}, {"trades": 6.0, **PGD2, **CPLX},
    {"beta": 8.0, **PGD2}, {"beta": 8.0, **PGD2, **CPLX},
])
def test_every_defense_trains(tmp_path, defense):
    m = run(tiny(train_images=64, **defense), tmp_path / "r")
    assert math.isfinite(m["ce"]) and 0 <= m["train_acc"] <= 1
    assert (m["gr"] is None) == ("beta" not in defense)
    assert (m["cos"] is None) == ("beta" not in defense and "trades" not in defense)
    assert ("kl" in m) == ("trades" in defense)
    if "trades" in defense:
        assert m["kl"] >= 0 and m["loss"] == pytest.approx(m["ce"] + 6.0 * m["kl"], rel=1e-6)
    rec = cvgr.load(tmp_path / "r").record
    assert rec["defense"]["name"] == tiny(**defense).resolved().defense
    assert rec["complex"] == defense.get("complex", False)


# -- the defenses' composition in one training step, against hand-written float64 versions ----

DT = torch.float64


def _ce_per_image(model, x, y):
    """Per-image cross-entropy written from probabilities (no F.cross_entropy)."""
    logits = model(x)
    logits = logits - logits.max(1, keepdim=True).values
    return -(logits.gather(1, y[:, None])[:, 0] - logits.exp().sum(1).log())


def _hand_pgd(model, x, y, eps, steps, gen):
    """Madry PGD as cvgr trains with it: uniform start, K sign steps of 1.85 eps / K."""
    alpha = 1.85 * eps / steps
    u = torch.rand(x.shape, generator=gen, dtype=x.dtype)
    adv = (x + (2 * u - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        a = adv.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_ce_per_image(model, a, y).sum(), a)
        adv = (x + (adv + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def _hand_gr(model, x, y, beta):
    """(CE_mean + beta * P, CE_mean, P), P = mean_i ||grad_x l_i||_1^2 / B^2, image by image."""
    b = x.shape[0]
    ces, norms = [], []
    for i in range(b):
        xi = x[i:i + 1].clone().requires_grad_(True)
        li = _ce_per_image(model, xi, y[i:i + 1])[0]
        (gi,) = torch.autograd.grad(li, xi, create_graph=True)
        ces.append(li)
        norms.append(gi.abs().sum() ** 2)
    ce = torch.stack(ces).mean()
    penalty = torch.stack(norms).mean() / b**2
    return ce + beta * penalty, ce, penalty


def _hand_trades(model, x, y, eps, steps, beta, gen):
    """TRADES written out: KL-ascent from x + 0.001 N(0, 1) with steps of eps / 4, then
    CE(x) + beta * mean KL(p(x) || p(x'))."""
    def probs(z):
        lg = model(z)
        return (lg - lg.logsumexp(1, True)).exp()

    with torch.no_grad():
        p = probs(x)
    adv = (x + (x + 0.001 * torch.randn(x.shape, generator=gen, dtype=x.dtype) - x)
           .clamp(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        a = adv.clone().requires_grad_(True)
        kl = (p * (p.log() - probs(a).log())).sum()
        (g,) = torch.autograd.grad(kl, a)
        adv = (x + (adv + eps / 4 * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    adv = adv.detach()
    pc, pa = probs(x), probs(adv)
    ce = -pc.gather(1, y[:, None]).log().mean()
    kl = (pc * (pc.log() - pa.log())).sum(1).mean()
    return ce + beta * kl, ce, kl


def _one_step(cfg, model, x, y, seed, kind="eager"):
    """cvgr's training step with SGD lr 1 (no momentum, no decay): returns the loss row and
    the parameter change, which is minus the gradient."""
    from cvgr.train.loop import make_gr_step
    from cvgr.train.step import train_step

    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)
    row, _ = train_step(model, opt, x, y, cfg, torch.Generator().manual_seed(seed), params,
                        False, make_gr_step(model, cfg, kind))
    return row, [b - p.detach() for b, p in zip(before, params, strict=True)]


def _float64_model(cfg, sharpen: float = 1.0):
    """The config's net in float64; `sharpen` scales the last weight matrix (a fresh net's
    near-uniform outputs leave a KL too small to test)."""
    from cvgr.models import create_model

    torch.manual_seed(0)
    model = create_model(cfg.arch, complex=cfg.complex).to(DT)
    with torch.no_grad():
        [p for p in model.parameters() if p.dim() == 2][-1].mul_(sharpen)
    return model


@pytest.mark.parametrize("kind", ["eager", "traced"])
@pytest.mark.parametrize("net", [{"arch": "MNISTNetV0"}, CPLX])
def test_gr_with_pgd_at_takes_the_penalty_on_the_adversarial_loss(net, kind):
    cfg = TrainConfig(dataset="fashion-mnist", beta=64.0, adv_eps=0.1, adv_steps=3, lr=1.0,
                      momentum=0.0, weight_decay=0.0, **net).resolved()
    model = _float64_model(cfg)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=DT)
    y = torch.tensor([0, 3, 5, 9])
    x_adv = _hand_pgd(model, x, y, 0.1, 3, torch.Generator().manual_seed(7))
    assert (x_adv - x).abs().max() > 0.09
    total, ce, penalty = _hand_gr(model, x_adv, y, 64.0)
    want = torch.autograd.grad(total, list(model.parameters()))
    clean_penalty = _hand_gr(model, x, y, 64.0)[2]
    assert abs(clean_penalty - penalty) > 0.05 * penalty  # clean and adversarial differ here
    row, moved = _one_step(cfg, model, x, y, 7, kind)
    torch.testing.assert_close(row[:3], torch.stack([total, ce, penalty]).detach(),
                               rtol=1e-9, atol=0)
    for got, w in zip(moved, want, strict=True):
        torch.testing.assert_close(got, w, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("net", [{"arch": "MNISTNetV0"}, CPLX])
def test_trades_training_step_matches_a_hand_written_one(net):
    cfg = TrainConfig(dataset="fashion-mnist", trades=6.0, adv_eps=0.1, adv_steps=3, lr=1.0,
                      momentum=0.0, weight_decay=0.0, **net).resolved()
    model = _float64_model(cfg, sharpen=30.0)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=DT)
    y = torch.tensor([0, 3, 5, 9])
    total, ce, kl = _hand_trades(model, x, y, 0.1, 3, 6.0, torch.Generator().manual_seed(7))
    want = torch.autograd.grad(total, list(model.parameters()))
    assert kl > 1e-2
    row, moved = _one_step(cfg, model, x, y, 7)
    torch.testing.assert_close(row[:3], torch.stack([total, ce, kl]).detach(), rtol=1e-9, atol=0)
    for got, w in zip(moved, want, strict=True):
        torch.testing.assert_close(got, w, rtol=1e-7, atol=1e-12)


def test_train_takes_one_options_object(tmp_path, monkeypatch):
    """`train` takes a RunOptions; keywords named like its fields change single fields, and an
    unknown keyword is refused (not silently dropped)."""
    import cvgr.train.loop as loop
    from cvgr.options import RunOptions

    seen = {}

    def fake_resolve(device):
        seen["device"] = device
        raise RuntimeError("stop here")

    monkeypatch.setattr(loop, "resolve_device", fake_resolve)
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTMLP", epochs=1)
    with pytest.raises(RuntimeError, match="stop here"):
        train(cfg, tmp_path / "a", options=RunOptions(device="cpu", quiet=True))
    assert seen["device"] == "cpu"
    with pytest.raises(RuntimeError, match="stop here"):
        train(cfg, tmp_path / "b", options=RunOptions(device="cpu"), device="meta")
    assert seen["device"] == "meta"
    with pytest.raises(TypeError):
        train(cfg, tmp_path / "c", progres=False)
    assert RunOptions.for_terminal(True) == RunOptions(progress=False, quiet=True)
    assert RunOptions.for_terminal(False).progress is True
