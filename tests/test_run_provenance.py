"""What decides a CPU run's last bits is recorded with it: PyTorch's thread count and the
executor that ran it (docs/cluster.md, "Seeds and determinism")."""

from __future__ import annotations

import os

import pytest
import torch

from cvgr.experiments import run_jobs
from cvgr.experiments.runner import RunOptions, job_output
from cvgr.io import read_json, read_jsonl
from cvgr.train import TrainConfig


def _have_fashion() -> bool:
    from cvgr.data import find

    return find("fashion-mnist")[0] is not None


@pytest.mark.skipif(not _have_fashion(), reason="fashion-mnist not installed (make data)")
@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_records_its_threads_and_executor(tmp_path, workers):
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTMLP", epochs=1, train_images=64,
                      test_images=32, cos_batches=0)
    job = {"id": "train-mlp", "task": "train", "config": cfg.resolved().to_dict(), "deps": [],
           "cost": 1.0}
    out = run_jobs([job], tmp_path, workers, options=RunOptions(device="cpu"),
                   log=lambda m: None)
    assert out["ran"] == ["train-mlp"]
    # --jobs 1 runs in this process with its threads; --jobs N gives each job cores / N
    threads = torch.get_num_threads() if workers == 1 else max(1, (os.cpu_count() or 1) // 2)
    env = read_json(job_output(job, tmp_path) / "config.json")["environment"]
    assert (env["torch_threads"], env["executor"], env["jobs"]) == (threads, "local", workers)
    row = read_jsonl(tmp_path / "log.jsonl")[-1]
    assert (row["threads"], row["executor"], row["workers"]) == (threads, "local", workers)
    # the environment is not the run's identity: another executor finds the run done
    again = run_jobs([job], tmp_path, 3 - workers, options=RunOptions(device="cpu"),
                     log=lambda m: None)
    assert again["skipped"] == ["train-mlp"] and again["ran"] == []


@pytest.mark.skipif(not _have_fashion(), reason="fashion-mnist not installed (make data)")
def test_a_direct_run_records_no_executor(tmp_path):
    from cvgr.train import train

    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTMLP", epochs=1, train_images=64,
                      test_images=32, cos_batches=0)
    train(cfg, tmp_path / "r", progress=False, quiet=True, device="cpu")
    env = read_json(tmp_path / "r" / "config.json")["environment"]
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["executor"] is None and env["jobs"] is None
