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

TINY = {"dataset": "fashion-mnist", "limit_train": 128, "limit_test": 64, "batch_size": 32}


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


@pytest.mark.parametrize("defense", [
    {},
    {"adv_eps": 0.1, "adv_kind": "fgsm"},
    {"beta": 8.0, "gr_mode": "fd", "arch": "MNISTNetV1", "complex": True},
    {"beta": 8.0, "gr_mode": "reference", "arch": "MNISTNetV1", "complex": True, "q": 2},
])
def test_every_defense_trains(tmp_path, defense):
    m = run(tiny(limit_train=64, **defense), tmp_path / "r")
    assert math.isfinite(m["ce"]) and 0 <= m["train_acc"] <= 1
    assert (m["gr"] is None) == ("beta" not in defense)
    assert (m["cos"] is None) == ("beta" not in defense)
