"""`cvgr attack`, `eval`, `transfer`, `autoattack` end to end on a small Fashion-MNIST model."""

from __future__ import annotations

import io
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from cvgr.checkpoint import save_model
from cvgr.cli import main
from test_attacks import FASHION, fashion, trained_fashion_mlp

pytestmark = pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "mlp-a"
    model = trained_fashion_mlp(steps=150, arch="MNISTMLP")
    save_model(model, d / "model.safetensors",
               {"arch": "MNISTMLP", "complex": False, "dataset": "fashion-mnist", "seed": 0})
    return d


def cli(*argv, capsys):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_attack_eval_round_trip(run_dir, tmp_path, capsys):
    out, ex = tmp_path / "curve.json", tmp_path / "ex.npz"
    rc, text, err = cli("attack", run_dir, "--attack", "pgd", "--steps", 4, "--eps", "0:0.2:0.1",
                        "--n-images", 150, "--nes-images", 10, "--save-examples", ex, "--out", out,
                        "--quiet", capsys=capsys)
    assert rc == 0, err
    res = json.loads(out.read_text())
    curve = res["curve"]
    assert curve["eps"] == [0.0, 0.1, 0.2] and curve["n_images"] == 150
    assert res["dataset"] == "fashion-mnist"
    assert curve["accuracy"][0] > 0.6 and curve["accuracy"][2] < curve["accuracy"][0] - 0.3
    checks = res["masking"]
    assert checks["eps"] == 0.1 and set(checks["checks"]) == {
        "black_box_stronger", "large_eps_not_broken", "loss_not_rising"}
    assert "gradient-masking checks" in text and "eps 0.1" in text
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

    # clean accuracy from `eval` agrees with eps 0 of the curve, computed independently
    rc, text, _ = cli("eval", run_dir, "--n-images", 150, capsys=capsys)
    assert rc == 0 and "clean accuracy" in text
    x, y = fashion("test", 150)
    from cvgr import load

    model = load(run_dir)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert f"{acc:.4f}" in text and curve["accuracy"][0] == pytest.approx(acc)

    # the saved examples reproduce the curve
    with np.load(ex, allow_pickle=False) as z:
        assert z["x"].shape == (3, 150, 1, 28, 28) and str(z["dataset"]) == "fashion-mnist"
    rc, text, _ = cli("eval", run_dir, "--examples", ex, "--out", tmp_path / "e.json", "--json",
                      capsys=capsys)
    assert rc == 0
    doc = json.loads(text)  # --json: stdout is exactly the result written to --out
    assert doc == json.loads((tmp_path / "e.json").read_text())
    assert doc["accuracy"] == pytest.approx(curve["accuracy"])
    rc, text, _ = cli("eval", run_dir, "--n-images", 150, "--json", capsys=capsys)
    assert rc == 0 and json.loads(text)["clean_accuracy"] == pytest.approx(acc)


def test_eval_refuses_foreign_examples(run_dir, tmp_path, capsys):
    from cvgr import evaluate

    x, y = torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)
    evaluate.save_examples(tmp_path / "m.npz", x, y, 0.1, dataset="mnist", attack="pgd")
    rc, _, err = cli("eval", run_dir, "--examples", tmp_path / "m.npz", capsys=capsys)
    assert rc == 2 and "dataset 'mnist'" in err and len(err.strip().splitlines()) == 1
    evaluate.save_examples(tmp_path / "s.npz", torch.rand(5, 3, 32, 32), y, 0.1,
                           dataset="fashion-mnist", attack="pgd")
    rc, _, err = cli("eval", run_dir, "--examples", tmp_path / "s.npz", capsys=capsys)
    assert rc == 2 and "(3, 32, 32)" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--eps=-0.1"], "negative"),
    (["--eps", "0:1.5:0.5"], "> 1"),
    (["--eps", "zero"], "cannot read eps"),
    (["--batch-size", "0"], "batch-size"),
])
def test_attack_bad_input_is_one_line(run_dir, argv, message, capsys):
    rc, _, err = cli("attack", run_dir, *argv, "--n-images", 5, "--no-checks", capsys=capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_run_dir_without_model(tmp_path, capsys):
    for cmd in (["attack"], ["eval"], ["autoattack", "--eps", "0.1"]):
        rc, _, err = cli(*cmd, tmp_path, capsys=capsys)
        assert rc == 2 and "no model" in err and "Traceback" not in err


def test_transfer_matrix_cli(run_dir, tmp_path, capsys, monkeypatch):
    from cvgr.cli import transfer

    other = tmp_path / "mlp-b"
    shutil.copytree(run_dir, other)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc, text, err = cli("transfer", run_dir, other, "--eps", 0.1, "--steps", 3, "--n-images", 60,
                        "--json", capsys=capsys)
    assert rc == 0, err
    out = run_dir / "transfer-pgd-linf-0.1.json"  # default: in the first run's directory
    assert not any(cwd.iterdir())  # never into the current directory
    m = json.loads(out.read_text())
    assert json.loads(text) == m and m["outputs"]["json"] == str(out)
    assert m["sources"] == ["mlp-a", "mlp-b"] and len(m["accuracy"]) == 2
    a = m["accuracy"]
    assert a[0][0] == pytest.approx(a[1][1]) and a[0][1] == pytest.approx(a[0][0])  # same model
    assert a[0][0] < m["clean_accuracy"]["mlp-a"]
    assert out.with_suffix(".png").is_file()
    assert f"wrote {out}" in err  # progress messages on stderr
    printed = "\n".join(transfer.lines(m))  # what the command prints without --json
    assert "no transfer attack beats" in printed and "mlp-b" in printed
    out.unlink()
    rc, _, _ = cli("transfer", run_dir, other, "--eps", 0.1, "--steps", 1, "--n-images", 5,
                   "--out", tmp_path / "t.json", "--quiet", capsys=capsys)
    assert rc == 0 and (tmp_path / "t.json").is_file() and not out.exists()
    rc, _, err = cli("transfer", run_dir, other, "--eps", 2, capsys=capsys)
    assert rc == 2 and "eps" in err


def test_autoattack_cli(run_dir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("art")
    pytest.importorskip("pyautoattack")
    from cvgr.cli import autoattack

    out = tmp_path / "aa.json"
    rc, text, err = cli("autoattack", run_dir, "--eps", 0.1, "--n-images", 40, "--version",
                        "custom", "--attacks", "apgd-ce:steps=5,art-square:queries=20",
                        "--out", out, "--quiet", "--json", capsys=capsys)
    assert rc == 0, err
    r = json.loads(out.read_text())
    assert json.loads(text) == r and err == ""  # --quiet: nothing on stderr
    assert r["n_images"] == 40 and r["robust_accuracy"] <= r["clean_accuracy"]
    assert r["version"] == "custom" and [a["attack"] for a in r["attacks"]] == \
        ["apgd-ce", "art-square"]
    assert r["attacks"][0]["settings"]["n_iter"] == 5 and r["model"]["arch"] == "MNISTMLP"
    assert len(r["robust_indices"]) == round(r["robust_accuracy"] * 40)
    printed = "\n".join(autoattack.lines(r))  # what the command prints without --json
    assert "worst case per image" in printed and "AutoAttack custom" in printed
    rc, _, err = cli("autoattack", run_dir, "--eps", 0.1, "--attacks", "apgd-ce", capsys=capsys)
    assert rc == 2 and err.startswith("cvgr autoattack: error: --attacks ") and "custom" in err
    monkeypatch.setitem(sys.modules, "art", None)
    rc, _, err = cli("autoattack", run_dir, "--eps", 0.1, "--version", "art", capsys=capsys)
    assert rc == 2 and "pip install cvgr[attack]" in err
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    rc, _, err = cli("autoattack", run_dir, "--eps", 0.1, capsys=capsys)
    assert rc == 2 and "pip install cvgr[autoattack]" in err


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal, so progress bars are drawn into it."""

    def isatty(self) -> bool:
        return True


def test_attack_json_and_progress_bars(run_dir, tmp_path, capsys, monkeypatch):
    args = ("attack", run_dir, "--attack", "fgsm", "--eps", "0,0.1", "--n-images", 30,
            "--no-checks", "--out", tmp_path / "f.json")
    rc, text, err = cli(*args, "--json", capsys=capsys)  # stderr captured: not a terminal
    assert rc == 0
    doc = json.loads(text)
    assert doc == json.loads((tmp_path / "f.json").read_text())
    assert doc["curve"]["eps"] == [0.0, 0.1] and doc["outputs"]["png"] == str(tmp_path / "f.png")
    assert "fgsm curve" not in err and "\r" not in err and f"wrote {tmp_path / 'f.json'}" in err

    tty = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", tty)
    rc, text, _ = cli(*args, capsys=capsys)
    assert rc == 0 and "fgsm curve" in tty.getvalue()  # a terminal: a bar
    assert "eps 0.1" in text and "fgsm curve" not in text  # never on stdout

    tty = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", tty)
    rc, text, _ = cli(*args, "--quiet", capsys=capsys)
    assert rc == 0 and "eps 0.1" in text
    assert tty.getvalue() == ""  # --quiet: no bar and no progress messages, even on a terminal


def test_exit_codes_of_real_failures(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    rc, _, err = cli("eval", bad, capsys=capsys)  # a corrupt checkpoint: a run-time error
    assert rc == 1 and "not a readable safetensors file" in err and "Traceback" not in err
    rc, _, err = cli("eval", tmp_path / "nothing", capsys=capsys)  # nothing there: usage
    assert rc == 2 and "no model here" in err


def test_inputs_carry_the_one_run_options(run_dir):
    """`Inputs` holds no copy of device, data root or progress: it carries a RunOptions, which
    the command line builds from --device, --data-root and --quiet."""
    import dataclasses

    from cvgr.cli import attack, build_parser
    from cvgr.errors import UserError
    from cvgr.evaluate.tasks import Inputs, eval_task
    from cvgr.options import RunOptions

    fields = {f.name for f in dataclasses.fields(Inputs)}
    assert not fields & {"device", "data_root", "progress"} and "options" in fields
    assert Inputs().options == RunOptions(device="cpu", progress=True)
    args = build_parser().parse_args(
        ["attack", str(run_dir), "--device", "cpu", "--data-root", "D", "--quiet"])
    opts = attack.inputs(args).options
    assert (opts.device, opts.data_root, opts.progress) == ("cpu", "D", False)
    res = eval_task(run_dir, Inputs(n_images=20, options=RunOptions(device="cpu")))
    assert res["n_images"] == 20
    with pytest.raises(UserError, match="device"):
        eval_task(run_dir, Inputs(n_images=20, options=RunOptions(device="nonsense")))
