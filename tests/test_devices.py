"""Device selection: one function picks the default and checks a name; clear one-line errors."""

import pytest
import torch

from cvgr.cli import main
from cvgr.devices import default_device, deterministic, resolve_device
from cvgr.errors import UserError


def _fake_cuda(monkeypatch, n):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


def test_default_is_cuda_when_present_else_cpu(monkeypatch):
    _fake_cuda(monkeypatch, 0)
    assert default_device() == torch.device("cpu") == resolve_device(None)
    _fake_cuda(monkeypatch, 2)
    assert default_device() == torch.device("cuda") == resolve_device(None)


def test_names_are_parsed_and_checked(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    _fake_cuda(monkeypatch, 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match=r"'cuda:7' does not exist: this machine has 2 CUDA GPUs"):
        resolve_device("cuda:7")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_gpu_is_one_line(monkeypatch, name):
    _fake_cuda(monkeypatch, 0)
    with pytest.raises(UserError) as e:
        resolve_device(name)
    msg = str(e.value)
    assert "\n" not in msg and f"device {name!r} asked for" in msg and "use cpu" in msg


def test_cuda_on_this_machine():
    """The real check, on whatever machine runs the suite."""
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(UserError, match="does not exist"):
            resolve_device(f"cuda:{n}")
    else:
        with pytest.raises(UserError, match="use cpu"):
            resolve_device("cuda")


def test_mps_absent_and_unknown_names(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="no Apple MPS device"):
        resolve_device("mps")
    with pytest.raises(UserError, match="'banana' is not a device name"):
        resolve_device("banana")
    with pytest.raises(UserError, match="not supported"):
        resolve_device("meta")


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "fashion-mnist", "--arch", "MNISTNetV0", "--epochs", "1"],
    ["reproduce", "--budget", "tiny"],
])
def test_cli_refuses_missing_cuda_before_writing(tmp_path, capsys, monkeypatch, argv):
    _fake_cuda(monkeypatch, 1)
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--device", "cuda:7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'cuda:7' does not exist" in err
    assert not out.exists()


def test_train_core_refuses_missing_cuda(tmp_path, monkeypatch):
    from cvgr.train import TrainConfig, train

    _fake_cuda(monkeypatch, 0)
    with pytest.raises(UserError, match="'cuda' asked for"):
        train(TrainConfig(dataset="fashion-mnist", arch="MNISTNetV0", epochs=1, train_images=64,
                          test_images=32),
              tmp_path / "run", device="cuda", progress=False)
    assert not (tmp_path / "run").exists()


def test_deterministic_block_sets_and_restores():
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() == before
    with deterministic(False):
        assert torch.are_deterministic_algorithms_enabled() == before


def test_execute_honours_deterministic_and_device(tmp_path, monkeypatch):
    import cvgr.experiments.evaluations as ev
    from cvgr.experiments.runner import RunOptions, execute

    seen = {}

    def fake(cfg, root, options):
        seen["det"] = torch.are_deterministic_algorithms_enabled()
        seen["device"] = options.device
        return {"ok": True}

    monkeypatch.setattr(ev, "run_evaluation", fake)
    job = {"id": "e", "task": "evaluate", "config": {"what": "sizes"}, "deps": []}
    res = execute(job, tmp_path, RunOptions(device=None, deterministic=True))
    assert seen == {"det": True, "device": str(default_device())}
    assert res["device"] == str(default_device())
    assert not torch.are_deterministic_algorithms_enabled()
