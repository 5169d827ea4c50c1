"""The model zoo's machinery on a tiny model published into a temporary zoo: catalogue, train,
publish, load, evaluate, table, doc; and the benchmark on the same model."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

import cvgr
from cvgr import zoo
from cvgr.cli import build_parser, main
from cvgr.cli.train import config_from_args
from cvgr.errors import UserError
from cvgr.train.config import TrainConfig
from cvgr.zoo import doc

TINY = "mnist-10k/tiny-mlp"
FMNIST = Path("/usr/share/datasets/fashion-mnist")
CHEAP = "apgd-ce:steps=5,square:queries=20"


def test_catalogue_is_the_issue_list():
    fm = {"arch": "mnist-cnn-groupsum", "complex": True, "beta": 64.0, "noise": 0.05}
    cx = {"arch": "mnist-cnn-groupsum", "complex": True}
    mn_c = {**cx, "beta": 512.0}
    trades = {"trades": 6.0, "adv_eps": 0.1, "adv_steps": 10, "adv_kind": "pgd"}
    want = {
        "fashion-mnist/complex-gr": fm,
        "fashion-mnist/real-gr": {"arch": "mnist-cnn", "beta": 64.0, "noise": 0.05},
        "mnist-10k/complex-gr": {"arch": "mnist-cnn-groupsum", "complex": True, "beta": 512.0},
        "mnist-10k/real-gr": {"arch": "mnist-cnn", "beta": 512.0},
        "mnist-10k/complex-none": {"arch": "mnist-cnn-groupsum", "complex": True},
        "mnist-10k/real-none": {"arch": "mnist-cnn"},
        "fashion-mnist/real-none": {"arch": "mnist-cnn"},
        "fashion-mnist/complex-none": {"arch": "mnist-cnn-groupsum", "complex": True},
        "fashion-mnist/real-pgd4": {"arch": "mnist-cnn", "adv_eps": 0.1, "adv_steps": 4},
        "fashion-mnist/complex-gr-reference": {**fm, "gr_mode": "reference"},
        "fashion-mnist/complex-gr-fd": {**fm, "gr_mode": "fd"},
        "fashion-mnist/complex-gr-seed1": {**fm, "seed": 1},
        "fashion-mnist/complex-gr-seed2": {**fm, "seed": 2},
        "mnist/complex-gr": mn_c,
        "mnist/complex-gr-seed1": {**mn_c, "seed": 1},
        "mnist/complex-gr-seed2": {**mn_c, "seed": 2},
        "mnist/real-gr": {"arch": "mnist-cnn", "beta": 512.0},
        "mnist/real-none": {"arch": "mnist-cnn"},
        "mnist/complex-none": {"arch": "mnist-cnn-groupsum", "complex": True},
        "mnist/real-pgd4": {"arch": "mnist-cnn", "adv_eps": 0.3, "adv_steps": 4},
        # issue 18: the field's standard defenses, and AT on the complex net
        "fashion-mnist/real-pgd10": {"arch": "mnist-cnn", "adv_eps": 0.1, "adv_steps": 10},
        "fashion-mnist/real-trades": {"arch": "mnist-cnn", **trades},
        "fashion-mnist/complex-pgd4": {**cx, "adv_eps": 0.1, "adv_steps": 4},
        "fashion-mnist/complex-trades": {**cx, **trades},
        "fashion-mnist/complex-gr-pgd4": {**cx, "beta": 64.0, "adv_eps": 0.1, "adv_steps": 4},
    }
    assert list(zoo.CATALOGUE) == list(want)
    for name, fields in want.items():
        cfg = zoo.entry(name).config()
        assert cfg.dataset == name.split("/")[0]
        # the dataset recipe everywhere else
        assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.milestones, cfg.lr_gamma) == \
            (30, 0.005, 64, (20,), 0.2)
        assert cfg.train_images is None and cfg.test_images is None
        default = {"complex": False, "beta": 0.0, "noise": 0.0, "adv_eps": 0.0, "seed": 0,
                   "gr_mode": "exact", "adv_steps": 4, "adv_kind": "pgd", "trades": 0.0}
        for k, v in {**default, **fields}.items():
            assert getattr(cfg, k) == v, (name, k)
        # the printed command, parsed by the real CLI, makes the same run
        argv = shlex.split(zoo.entry(name).command("runs/x"))[1:]
        assert config_from_args(build_parser().parse_args(argv)).resolved() == cfg


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    """A tiny catalogue entry (2 epochs, 128 images), a temporary zoo and runs root."""
    e = zoo.ZooEntry(TINY, "tiny test MLP", {"arch": "mnist-mlp", "epochs": 2,
                                              "train_images": 128, "test_images": 64})
    monkeypatch.setitem(zoo.CATALOGUE, TINY, e)
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "zoo"))
    return tmp_path


def test_train_publish_load_evaluate(tiny, capsys):
    pytest.importorskip("pyautoattack")
    runs = tiny / "runs"
    with pytest.raises(UserError, match=rf"zoo:{TINY} is not shipped yet.*cvgr zoo train {TINY}"):
        cvgr.load(f"zoo:{TINY}")
    with pytest.raises(UserError, match="no zoo model 'nope'"):
        cvgr.load("zoo:nope")
    # an interrupted run is refused, then resumed by `zoo train`
    from cvgr.train import train

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    e = zoo.entry(TINY)
    with pytest.raises(Stop):
        train(e.config(), runs / "mnist-10k" / "tiny-mlp", progress=False, callback=stop,
              quiet=True)
    with pytest.raises(UserError, match="not finished"):
        zoo.publish(runs / "mnist-10k" / "tiny-mlp")
    assert main(["zoo", "train", TINY, "--runs-dir", str(runs), "--quiet"]) == 0
    run_dir = runs / "mnist-10k" / "tiny-mlp"
    assert zoo.publishable_runs(runs) == [(e, run_dir)]
    assert main(["zoo", "publish", "--runs-dir", str(runs), "--hardware", "test box"]) == 0
    wf = zoo.weights_file(TINY)
    assert wf == tiny / "zoo" / "mnist-10k" / "tiny-mlp.safetensors" and wf.is_file()
    rec = cvgr.checkpoint.read_record(wf)
    metrics = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rec["zoo"]["train_seconds_per_epoch"] == [m["train_seconds"] for m in metrics]
    assert rec["zoo"]["device"] == "cpu" and rec["zoo"]["hardware"] == "test box"
    assert rec["zoo"]["name"] == TINY and rec["finished"]
    model = cvgr.load(f"zoo:{TINY}")
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), cvgr.load(run_dir)(x))

    # evaluate: stored beside the weights, checked against an independent computation
    (res,) = zoo.evaluate([TINY], 16, version="custom", attacks=CHEAP, progress=False)
    stored = json.loads(zoo.eval_file(TINY).read_text())
    assert stored["autoattack"]["robust_accuracy"] == res["autoattack"]["robust_accuracy"]
    from cvgr.data import first_test_images

    xs, ys = first_test_images("mnist-10k", 16, None)
    with torch.no_grad():
        clean = (model(xs).argmax(1) == ys).float().mean().item()
    assert res["clean_accuracy"] == clean and res["eps"] == 0.2 and res["n_images"] == 16
    assert res["pgd8"]["accuracy"] <= clean
    assert res["autoattack"]["robust_accuracy"] <= clean
    # resumable: a second call measures nothing; --force measures again
    logs: list[str] = []
    zoo.evaluate([TINY], 16, version="custom", attacks=CHEAP, progress=False, log=logs.append)
    assert "already measured" in logs[0]
    logs.clear()
    zoo.evaluate([TINY], 16, version="custom", attacks=CHEAP, progress=False, force=True,
                 log=logs.append)
    assert "already measured" not in " ".join(logs)

    # the table: the tiny model measured, the real entries shown as not trained
    rows = {r["name"]: r for r in zoo.rows()}
    assert rows[TINY]["clean_accuracy"] == clean and rows[TINY]["version"] == "custom"
    assert not rows["fashion-mnist/complex-gr"]["shipped"]
    capsys.readouterr()
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    tiny_line = next(ln for ln in out.splitlines() if ln.startswith(TINY))
    assert f"{clean:.3f}" in tiny_line and "(custom)" in tiny_line and "cpu: test box" in tiny_line
    assert "not trained yet" in next(ln for ln in out.splitlines()
                                     if ln.startswith("fashion-mnist/complex-gr "))
    # published again (a new record, the same weights): the evaluation still counts
    zoo.publish(run_dir, hardware="other box")
    assert zoo.rows()[-1]["clean_accuracy"] == clean
    assert zoo.rows()[-1]["hardware"] == "other box"

    # the page
    page = tiny / "zoo.md"
    assert main(["zoo", "doc", "--out", str(page)]) == 0
    text = page.read_text()
    assert TINY in text and "not yet measured" in text and "| 253 | 1.00 |" in text

    # the benchmark on a zoo model, through the CLI
    capsys.readouterr()
    assert main(["benchmark", f"zoo:{TINY}", "--n-images", "16", "--version", "custom",
                 "--attacks", CHEAP, "--json", "--out", str(tiny / "b.json")]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["clean_accuracy"] == clean and b["eps"] == 0.2 and b["n_images"] == 16
    assert json.loads((tiny / "b.json").read_text())["robust_accuracy"] == b["robust_accuracy"]
    assert b["model"]["source"] == f"zoo:{TINY}"

    # other weights under the same name: the old evaluation no longer counts
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    cvgr.checkpoint.save_model(model, wf, rec)
    row = zoo.rows()[-1]
    assert row["shipped"] and row["clean_accuracy"] is None


def test_publish_refusals(tiny):
    from cvgr.train import train

    other = tiny / "other"
    train(TrainConfig(dataset="mnist-10k", arch="mnist-mlp", epochs=1, train_images=64,
                      test_images=32, seed=5), other, progress=False, quiet=True)
    with pytest.raises(UserError, match="match no zoo entry"):
        zoo.publish(other)
    with pytest.raises(UserError, match=f"not trained as zoo:{TINY}"):
        zoo.publish(other, TINY)
    with pytest.raises(UserError, match="not a cvgr run directory"):
        zoo.publish(tiny / "missing")
    assert main(["zoo", "publish"]) == 2


def _row(name, aa, clean, spe=10.0, n=500, version="standard"):
    return {"name": name, "autoattack": aa, "clean_accuracy": clean, "n_images": n, "eps": 0.1,
            "version": version, "seconds_per_epoch": spe, "device": "cpu", "hardware": "x"}


def test_comparison_sentences_follow_the_numbers():
    fm = "fashion-mnist"
    rs = [_row(f"{fm}/complex-gr", 0.40, 0.80), _row(f"{fm}/real-gr", 0.30, 0.75)]
    s = doc.complex_vs_real(rs, fm)
    # difference 0.10; two standard errors of it at n=500: 2*sqrt(.4*.6/500+.3*.7/500)=0.060
    assert "beats" in s and "+0.100" in s and "0.060" in s and "0.800 against 0.750" in s
    rs[0]["autoattack"] = 0.32
    assert "ties with" in doc.complex_vs_real(rs, fm)
    rs[0]["autoattack"] = 0.20
    assert "does not beat" in doc.complex_vs_real(rs, fm)
    rs[1]["version"] = "custom"  # only the standard version counts
    assert "not yet measured" in doc.complex_vs_real(rs, fm)
    assert "not yet measured" in doc.complex_vs_real(rs, "mnist-10k")
    rs[1]["version"] = "standard"
    rs[0]["flags"] = ["Square Attack has decreased the robust accuracy of 2.30%."]
    flagged = doc.complex_vs_real(rs, fm)
    assert "flagged the complex GR net" in flagged and "upper bound" in flagged
    rs[0]["evaluated"] = True
    assert doc.flag_lines(rs) == [f"{fm}/complex-gr: Square Attack has decreased the robust "
                                  "accuracy of 2.30%."]
    assert doc.flag_lines(rs[1:]) == ["No evaluated model raised one."]

    modes = [_row(f"{fm}/complex-gr", 0.40, 0.8, 30.0),
             _row(f"{fm}/complex-gr-reference", 0.25, 0.8, 20.0),
             _row(f"{fm}/complex-gr-fd", 0.30, 0.8, 15.0),
             _row(f"{fm}/complex-none", 0.05, 0.85, 5.0)]
    g = doc.gr_modes(modes)
    assert "Most robust: exact; fastest to train: fd" in g  # 0.10 > two SEs (0.060)
    assert "+1.17 points per s/epoch" in g  # (0.40 - 0.05) / 30 * 100
    modes[2]["autoattack"] = 0.38  # 0.02 apart: within two standard errors (0.061)
    assert "Most robust: exact (tied, within two standard errors, with fd);" in \
        doc.gr_modes(modes)
    assert "not yet measured" in doc.gr_modes(modes[:2])

    seeds = [_row(f"{fm}/complex-gr", 0.40, 0.80), _row(f"{fm}/complex-gr-seed1", 0.30, 0.78),
             _row(f"{fm}/complex-gr-seed2", 0.35, 0.79)]
    sp = doc.seed_spread(seeds)
    assert "mean 0.350" in sp and "standard deviation 0.050" in sp and "range 0.100" in sp
    assert "not yet measured" in doc.seed_spread(seeds[:2])


def test_shipped_weights_are_zoo_models_within_the_size_budget():
    """Whatever is shipped in the package: under 25 MB in all, each file a finished zoo model
    of the entry its path names, each evaluation beside weights."""
    from cvgr.checkpoint import read_record

    files = sorted(p for p in zoo.PACKAGE_ROOT.rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in files) < 25 * 2**20
    for p in files:
        name = f"{p.parent.name}/{p.name.split('.')[0]}"
        assert name in zoo.CATALOGUE, p
        if p.suffix == ".safetensors":
            rec = read_record(p)
            assert rec["finished"] and rec["zoo"]["name"] == name
            # read as TrainConfig: records written before a field's rename keep its old name
            assert TrainConfig.from_dict(rec["config"]) == zoo.entry(name).config()
        else:
            assert p.name.endswith(".eval.json"), p
            assert zoo.weights_file(name, zoo.PACKAGE_ROOT).is_file(), p


def test_docs_and_readme_hold_the_shipped_numbers():
    """docs/zoo.md and the README's zoo table are what `cvgr zoo doc --readme README.md`
    writes from the shipped measurements now: neither can drift from the weights' numbers."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    rs = zoo.rows()
    page = (root / "docs" / "zoo.md").read_text()
    assert page == doc.render(rs), "docs/zoo.md is stale: run `cvgr zoo doc --readme README.md`"
    readme = (root / "README.md").read_text()
    assert doc.readme_section(rs) in readme, \
        "README's zoo table is stale: run `cvgr zoo doc --readme README.md`"
    for r in rs:  # every shipped number appears in both
        if r["autoattack"] is not None:
            assert f"{r['autoattack']:.3f}" in page and f"{r['autoattack']:.3f}" in readme


def test_update_readme_needs_its_markers(tmp_path):
    from cvgr.errors import UserError

    f = tmp_path / "README.md"
    f.write_text("# x\n")
    with pytest.raises(UserError, match="has no zoo section"):
        doc.update_readme(f)
    f.write_text(f"# x\n{doc.README_BEGIN}\nold\n{doc.README_END}\ntail\n")
    doc.update_readme(f, tmp_path / "empty-zoo")
    text = f.read_text()
    assert "old" not in text and text.endswith("tail\n") and "not yet measured" in text


def test_zoo_device_script_trains_publishes_evaluates_and_packs(tmp_path):
    """tools/zoo_device.sh (how the shipped zoo was made), on the CPU, on a 6-image MNIST-10k:
    the entry trains 30 epochs, is published into $CVGR_ZOO_DIR, evaluated, and everything
    comes back packed in OUT; the package's own zoo is untouched."""
    import os
    import subprocess
    import sys
    import tarfile
    from pathlib import Path

    from test_reliability import _idx_dataset

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    _idx_dataset(data / "mnist-10k", n=6)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (shim / "python3").chmod(0o755)
    before = sorted(p.name for p in zoo.PACKAGE_ROOT.rglob("*"))
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "DEVICE": "cpu",
           "CVGR_ZOO_DIR": str(tmp_path / "zoo"),
           "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(root / "tools" / "zoo_device.sh"), str(tmp_path / "runs"),
                           str(data), str(out), "300", "5", "mnist-10k/real-none"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "runs" / "logs" / "mnist-10k__real-none.log").read_text()
    assert "== mnist-10k/real-none: done" in log, log
    ev = json.loads((tmp_path / "zoo" / "mnist-10k" / "real-none.eval.json").read_text())
    assert ev["n_images"] == 5 and ev["version"] == "standard" and "autoattack" in ev
    rec = cvgr.checkpoint.read_record(tmp_path / "zoo" / "mnist-10k" / "real-none.safetensors")
    assert rec["finished"] and rec["zoo"]["hardware"] == "cpu, 1 zoo runs sharing it"
    parts = sorted(out.glob("zoo.tgz.part*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    packed = tmp_path / "packed.tgz"
    packed.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(packed) as t:
        names = t.getnames()
    assert any(n.endswith("mnist-10k/real-none.safetensors") for n in names)
    assert any(n.endswith("logs/mnist-10k__real-none.log") for n in names)
    assert sorted(p.name for p in zoo.PACKAGE_ROOT.rglob("*")) == before


def test_further_attacks_on_the_survivors_lower_the_worst_case(tiny, capsys):
    """`evaluate_further` attacks only the images the stored standard run left robust and
    stores the worst case over both; the table and the docs show it."""
    pytest.importorskip("pyautoattack")
    from cvgr.data import first_test_images

    runs = tiny / "runs"
    assert main(["zoo", "train", TINY, "--runs-dir", str(runs), "--quiet"]) == 0
    assert main(["zoo", "publish", "--runs-dir", str(runs)]) == 0
    with pytest.raises(UserError, match="no standard AutoAttack of its current weights"):
        zoo.evaluate_further(TINY, "apgd-ce:steps=10", progress=False)
    capsys.readouterr()
    assert main(["zoo", "evaluate", "--further", "apgd-ce:steps=10"]) == 2
    assert "--further needs the zoo models" in capsys.readouterr().err
    # a stored standard evaluation whose survivors are every correctly classified image
    model = cvgr.load(f"zoo:{TINY}")
    xs, ys = first_test_images("mnist-10k", 64, None)
    with torch.no_grad():
        correct = (model(xs).argmax(1) == ys).nonzero().squeeze(1).tolist()
    assert len(correct) >= 4
    ev = {"n_images": 64, "eps": 0.2, "weights_sha256": zoo.weights_digest(zoo.weights_file(TINY)),
          "version": "standard", "clean_accuracy": len(correct) / 64, "pgd8": {"accuracy": 0},
          "autoattack": {"version": "standard", "robust_accuracy": len(correct) / 64,
                         "robust_indices": correct, "flags": []}}
    zoo.eval_file(TINY).write_text(json.dumps(ev))
    logs: list[str] = []
    row = zoo.evaluate_further(TINY, "apgd-ce:steps=20", seed=3, progress=False,
                               log=logs.append)
    still = row["robust_indices"]
    assert set(still) <= set(correct) and row["attacked"] == len(correct)
    assert row["worst_case_robust_accuracy"] == len(still) / 64 < len(correct) / 64
    with torch.no_grad():  # every image still counted robust is still classified right
        assert bool((model(xs[still]).argmax(1) == ys[still]).all()) if still else True
    assert f"on the {len(correct)} survivors" in logs[0]
    stored = json.loads(zoo.eval_file(TINY).read_text())
    assert stored["further"][0]["seed"] == 3 and stored["autoattack"] == ev["autoattack"]
    r = {r["name"]: r for r in zoo.rows()}[TINY]
    assert r["strongest"] == row["worst_case_robust_accuracy"]
    head, body = zoo.table([r])
    cell = body[0][head.index("AutoAttack acc")]
    assert f"{r['strongest']:.3f} with further attacks" in cell
    r["evaluated"] = True
    assert any("--further apgd-ce:steps=20 --seed 3" in line and f"{r['strongest']:.3f}" in line
               for line in doc.flag_lines([r]))


ISSUE18 = ["fashion-mnist/real-pgd10", "fashion-mnist/real-trades", "fashion-mnist/complex-pgd4",
           "fashion-mnist/complex-trades", "fashion-mnist/complex-gr-pgd4"]


def test_pending_entries_are_listed_refused_and_documented(monkeypatch, tmp_path, capsys):
    """Entries in the catalogue but not shipped: the table and the README say so, loading or
    evaluating one is a one-line UserError, the page lists their settings."""
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "empty-zoo"))
    rows = {r["name"]: r for r in zoo.rows()}
    capsys.readouterr()
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out.splitlines()
    for name in ISSUE18:
        assert not rows[name]["shipped"] and rows[name]["autoattack"] is None
        assert "not trained yet" in next(ln for ln in out if ln.startswith(name + " "))
        with pytest.raises(UserError, match=f"zoo:{name} is not shipped yet") as e:
            cvgr.load(f"zoo:{name}")
        assert "\n" not in str(e.value)
    assert main(["zoo", "evaluate", ISSUE18[1]]) == 2
    assert "not shipped yet" in capsys.readouterr().err
    assert f"| {ISSUE18[1]} (trades10) | not trained yet |" in doc.readme_section(zoo.rows())
    page = doc.render(zoo.rows())
    assert "| fashion-mnist/real-trades | real, TRADES beta 6 at eps 0.1 (10 inner steps) | " \
           "--arch MNISTNetV0 --trades 6 --adv-eps 0.1 --adv-steps 10 |" in page


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST files not installed")
@pytest.mark.parametrize("name", ISSUE18)
def test_issue18_entries_train_a_tiny_smoke_run(tmp_path, name):
    """Each new entry's exact defense, on 64 images for one epoch (not the zoo budget)."""
    from cvgr.train import train

    e = zoo.entry(name)
    cfg = zoo.ZooEntry(name, e.summary, {**e.settings, "epochs": 1, "train_images": 64,
                                         "test_images": 32, "batch_size": 32}).config()
    m = train(cfg, tmp_path / "r", progress=False, quiet=True, device="cpu", data_root=FMNIST)
    assert 0 <= m["val_acc"] <= 1 and m["ce"] > 0
    rec = cvgr.load(tmp_path / "r").record
    assert rec["defense"]["name"] == e.config().defense
    assert rec["defense"].get("trades") == e.settings.get("trades")


def test_zoo_takes_the_list_options_as_its_default_action(tmp_path, capsys):
    def run(*argv):
        rc = main(["zoo", *argv])
        out, err = capsys.readouterr()
        return rc, out, err

    rc, listed, _ = run("list", "--json")
    assert rc == 0 and json.loads(listed)
    for argv in (["--json"], ["--json", "list"]):
        rc, out, _ = run(*argv)
        assert rc == 0 and out == listed, argv  # the same JSON document
    empty = tmp_path / "empty-zoo"
    empty.mkdir()
    for argv in (["--zoo-dir", str(empty), "--json"], ["list", "--zoo-dir", str(empty),
                                                      "--json"]):
        rc, out, _ = run(*argv)
        assert rc == 0 and not any(r["shipped"] for r in json.loads(out)), argv
    rc, _, err = run("--json", "doc", "--out", str(tmp_path / "zoo.md"))
    assert rc == 2 and err.count("\n") == 1 and "--json goes with the zoo table" in err
    assert not (tmp_path / "zoo.md").exists()
