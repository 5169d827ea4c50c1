"""The Ray executor against the local runner, on a real local Ray instance (2 CPUs)."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from safetensors.torch import load_file

from cvgr.cli import main
from cvgr.errors import UserError
from cvgr.experiments import build_plan, run_jobs
from cvgr.experiments.ray_executor import RayOptions, run_jobs_ray
from cvgr.experiments.runner import RunOptions, execute, job_output
from cvgr.io import LOCK_FILE, read_json, read_jsonl, write_json

# the wrappers below travel to Ray workers by value (the tests directory is not importable there)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])



def _have_fashion() -> bool:
    from cvgr.data import find

    return find("fashion-mnist")[0] is not None


needs_data = pytest.mark.skipif(not _have_fashion(),
                                reason="fashion-mnist not installed (make data)")
# The local setting the Ray runs are compared with, bit for bit: one job at a time on one
# PyTorch thread. Ray's tasks run on --cpus-per-job threads (1 by default), as each worker of
# `--jobs 2` does on 2 cores; `--jobs 1` alone would use all cores' threads and may differ in
# the last bits (docs/cluster.md, "Seeds and determinism").
CPU1 = RunOptions(device="cpu", threads=1)


def _tiny_subset():
    """The tiny plan's jobs that the main claims need (complex/real GR and no defense, their
    curves, masking, AutoAttack, identity, the seeds' transfer matrix), closed under
    dependencies: every kind of job, in half the time of the whole plan."""
    plan = build_plan("fashion-mnist", "tiny")
    keep = {"eval-pgd-complex-gr", "eval-fgsm-real-gr", "eval-masking-complex-gr",
            "eval-autoattack-complex-gr", "eval-identity", "eval-sizes", "eval-transfer"}
    by_id = {j["id"]: j for j in plan["jobs"]}
    for k in list(keep):
        keep |= set(by_id[k]["deps"])
    return [j for j in plan["jobs"] if j["id"] in keep]


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*")
                  if p.is_file() and p.name not in ("log.jsonl", LOCK_FILE))


def _no_times(obj):
    if isinstance(obj, dict):
        return {k: _no_times(v) for k, v in obj.items()
                if "second" not in k and "time" not in k}
    if isinstance(obj, list):
        return [_no_times(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def local_tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    jobs = _tiny_subset()
    out = run_jobs(jobs, root, 1, options=CPU1, log=lambda m: None)
    assert not out["failed"] and not out["blocked"]
    return jobs, root


def _compare(jobs, local, other):
    """Bitwise the same weights and results as the local runner with CPU1 (1 thread)."""
    for job in jobs:
        if job["task"] == "train":
            envs = [read_json(job_output(job, r) / "config.json")["environment"]
                    for r in (local, other)]
            assert [e["torch_threads"] for e in envs] == [1, 1], job["id"]
            assert [e["executor"] for e in envs] == ["local", "ray"], job["id"]
            a = load_file(str(job_output(job, local) / "model.safetensors"))
            b = load_file(str(job_output(job, other) / "model.safetensors"))
            assert a.keys() == b.keys()
            assert all(torch.equal(a[k], b[k]) for k in a), job["id"]
        else:
            ra, rb = (read_json(job_output(job, r)) for r in (local, other))
            assert _no_times(ra["result"]) == _no_times(rb["result"]), job["id"]


@needs_data
@pytest.mark.slow
def test_tiny_budget_through_the_cli_on_ray(ray_local, local_tiny, tmp_path, capsys):
    """The whole hidden tiny budget through `cvgr reproduce --executor ray` (shared
    filesystem: one machine, 1 thread per task), against the local runner with one job on 1
    thread (CPU1), bitwise."""
    jobs, local = local_tiny
    out = tmp_path / "rep"
    argv = ["reproduce", "--dataset", "fashion-mnist", "--budget", "tiny", "--out", str(out),
            "--device", "cpu", "--executor", "ray", "--ray-shared-fs", "yes"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    n = len(read_json(out / "plan.json")["jobs"])
    assert f"{n} jobs: 0 already finished, {n} to run as Ray tasks" in err
    assert f"[run {n}/{n}]" in err and "ETA" in err and "Ray: shared filesystem" in err
    res = read_json(out / "results.json")
    assert not res["failed"] and res["verdicts"]["identity"]["status"] == "holds"
    assert (out / "report.md").stat().st_size > 0
    _compare(jobs, local, out)
    done = [r for r in read_jsonl(out / "log.jsonl") if r["status"] == "done"]
    assert len(done) == n and all(r["device"] == "cpu" and r["node"] for r in done)
    assert {(r["executor"], r["threads"]) for r in done} == {("ray", 1)}
    assert main(argv) == 0  # resume and is_done unchanged: nothing runs twice
    assert f"{n} already finished, 0 to run" in capsys.readouterr().err
    assert len(read_jsonl(out / "log.jsonl")) == n


@needs_data
@pytest.mark.slow
def test_tiny_jobs_shipped_without_shared_fs(ray_local, local_tiny, tmp_path):
    """Without a shared filesystem the workers return their files; OUT gets exactly the
    local runner's layout and bitwise the same weights as it gives with one job on 1 thread
    (CPU1, as each Ray task here)."""
    jobs, local = local_tiny
    logs = []
    out = run_jobs_ray(jobs, tmp_path, RayOptions(shared_fs="no"), options=CPU1,
                       log=logs.append)
    assert not out["failed"] and not out["blocked"] and len(out["ran"]) == len(jobs)
    assert any("Ray: no shared filesystem" in m for m in logs)
    assert any(f"[run {len(jobs)}/{len(jobs)}]" in m for m in logs)
    assert _files(tmp_path) == _files(local)  # the local runner's layout, nothing more
    _compare(jobs, local, tmp_path)
    again = run_jobs_ray(jobs, tmp_path, RayOptions(shared_fs="no"), options=CPU1,
                         log=lambda m: None)
    assert again["ran"] == [] and len(again["skipped"]) == len(jobs)


# -- a worker killed in the middle of a train job ------------------------------------------------


def _kill_after_first_epoch(job, root, options):
    """First attempt: the worker process dies (os._exit) once epoch 1 is on disk. Later
    attempts record how many epochs they found, then train normally."""
    marks = Path(job["config"]["_marks"])
    run = job_output(job, root)
    if not (marks / "killed").exists():
        def watch():
            while not (run / "metrics.jsonl").exists() or \
                    not (run / "metrics.jsonl").read_text().strip():
                time.sleep(0.02)
            (marks / "killed").write_text(str(os.getpid()))
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    else:
        from cvgr.train import RunDir

        meta = RunDir(run).state_meta()
        write_json(marks / "resumed.json", {"epoch": meta["epoch"] if meta else 0,
                                            "pid": os.getpid()})
    job = {**job, "config": {k: v for k, v in job["config"].items() if k != "_marks"}}
    return execute(job, root, options)


def _train_job(epochs=2):
    return {"id": "train-x", "task": "train", "deps": [], "cost": 1.0,
            "config": {"dataset": "fashion-mnist", "arch": "MNISTNetV1", "complex": True,
                       "beta": 64.0, "noise": 0.05, "epochs": epochs, "train_images": 128,
                       "test_images": 32, "seed": 0}}


def _done_only(marks):
    def done(job, root):
        from cvgr.experiments.runner import is_done
        return is_done({**job, "config": {k: v for k, v in job["config"].items()
                                          if k != "_marks"}}, root)
    return done


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("shared_fs", ["yes", "no"])
def test_killed_worker_is_retried_and_training_resumes(ray_local, tmp_path, shared_fs):
    marks = tmp_path / "marks"
    marks.mkdir()
    job = _train_job()
    ref = tmp_path / "ref"
    run_jobs([job], ref, 1, options=CPU1, log=lambda m: None)
    marked = {**job, "config": {**job["config"], "_marks": str(marks)}}
    out = run_jobs_ray([marked], tmp_path / "out", RayOptions(shared_fs=shared_fs),
                       options=CPU1, execute_fn=_kill_after_first_epoch,
                       done_fn=_done_only(marks), log=lambda m: None)
    assert out["ran"] == ["train-x"] and not out["failed"]
    killed = int((marks / "killed").read_text())
    resumed = read_json(marks / "resumed.json")
    assert resumed["pid"] != killed and resumed["epoch"] == 1  # a new worker, after epoch 1
    a = load_file(str(ref / "runs/train-x/model.safetensors"))
    b = load_file(str(tmp_path / "out/runs/train-x/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumed exactly where it died


# -- failures ------------------------------------------------------------------------------------


def _fake_execute(job, root, options):
    if job["config"].get("fail"):
        raise ValueError(f"{job['id']} broke")
    write_json(job_output(job, root), {"config": job["config"], "result": {"ok": True}})
    return {"id": job["id"], "seconds": 0.0, "summary": {}, "device": options.device}


def _fake_jobs():
    def j(i, deps=(), **cfg):
        return {"id": i, "task": "evaluate", "config": {"what": "fake", **cfg},
                "deps": list(deps), "cost": 1.0}

    return [j("a"), j("b"), j("c", ["a"], fail=True), j("d", ["b", "c"]), j("e"),
            j("f", ["d"])]


@pytest.mark.parametrize("shared_fs", ["yes", "no"])
def test_failed_job_blocks_its_dependents_as_locally(ray_local, tmp_path, shared_fs):
    local = run_jobs(_fake_jobs(), tmp_path / "local", 1, execute_fn=_fake_execute,
                     log=lambda m: None)
    logs = []
    out = run_jobs_ray(_fake_jobs(), tmp_path / "ray", RayOptions(shared_fs=shared_fs),
                       execute_fn=_fake_execute, log=logs.append)
    assert out["failed"] == local["failed"] == {"c": "ValueError: c broke"}
    assert sorted(out["blocked"]) == sorted(local["blocked"]) == ["d", "f"]
    assert sorted(out["ran"]) == sorted(local["ran"]) == ["a", "b", "e"]
    assert read_json(tmp_path / "ray/failures.json") == out["failed"]
    rows = read_jsonl(tmp_path / "ray/log.jsonl")
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(bad) == 1 and "c broke" in bad[0]["traceback"]
    assert any("FAILED c: ValueError: c broke" in m for m in logs)
    assert any("skip d: a job it needs failed" in m for m in logs)
    assert not (tmp_path / "ray" / ".cvgr-ray-token.json").exists()


def test_ray_option_errors_name_the_parameter(ray_local, tmp_path):
    for kw, word in (({"cpus_per_job": 0}, "cpus_per_job"), ({"gpus_per_job": -1}, "gpus_per_job"),
                     ({"gpus_per_job": 1.5}, "gpus_per_job"), ({"shared_fs": "maybe"}, "shared_fs"),
                     ({"max_retries": -1}, "max_retries")):
        with pytest.raises(UserError, match=word):
            run_jobs_ray(_fake_jobs(), tmp_path, RayOptions(**kw), execute_fn=_fake_execute)
    with pytest.raises(UserError, match="cluster has no GPU"):
        run_jobs_ray(_fake_jobs(), tmp_path, RayOptions(gpus_per_job=0.25),
                     options=RunOptions(device="cuda"), execute_fn=_fake_execute)
    with pytest.raises(UserError, match="needs gpus_per_job"):
        run_jobs_ray(_fake_jobs(), tmp_path, RayOptions(), options=RunOptions(device="cuda"),
                     execute_fn=_fake_execute)
    with pytest.raises(UserError, match="more than any Ray node has"):
        run_jobs_ray(_fake_jobs(), tmp_path, RayOptions(cpus_per_job=64),
                     execute_fn=_fake_execute)
    assert not (tmp_path / "log.jsonl").exists()  # nothing ran


def test_cli_ray_flags(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["reproduce", "--budget", "tiny", "--out", str(out), "--gpus-per-job", "0.5"]) == 2
    assert "--gpus-per-job needs --executor ray" in capsys.readouterr().err
    assert main(["reproduce", "--budget", "tiny", "--out", str(out), "--executor", "ray",
                 "--jobs", "2"]) == 2
    assert "--jobs applies to the local executor" in capsys.readouterr().err
    assert main(["reproduce", "--budget", "tiny", "--out", str(out), "--executor", "ray",
                 "--cpus-per-job", "0"]) == 2
    assert "--cpus-per-job must be > 0" in capsys.readouterr().err
    assert not out.exists()


def test_local_executor_does_not_import_ray():
    code = ("import sys; from cvgr.cli import build_parser; build_parser(); "
            "import cvgr.experiments.reproduce, cvgr.experiments.ray_executor; "
            "print('ray' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(res.stdout.strip().lower()) is False
