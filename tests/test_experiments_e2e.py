"""One tiny end-to-end `cvgr reproduce` on Fashion-MNIST, then a second call that does nothing."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cvgr.cli import main
from cvgr.io import read_json, read_jsonl


def _have_fashion() -> bool:
    from cvgr.data import find

    return find("fashion-mnist")[0] is not None


@pytest.mark.slow
@pytest.mark.skipif(not _have_fashion(), reason="fashion-mnist not installed (make data)")
def test_tiny_reproduce_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["reproduce", "--dataset", "fashion-mnist", "--budget", "tiny", "--out", str(out),
            "--device", "cpu"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    plan = read_json(out / "plan.json")
    n = len(plan["jobs"])
    assert f"[run {n}/{n}]" in err and "ETA" in err
    for f in ("report.md", "report.html", "results.json", "summary.md"):
        assert (out / f).stat().st_size > 0
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["beta_sweep.png", "robustness_fgsm.png", "robustness_pgd.png",
                    "training_time.png", "transfer.png", "transfer_curves.png"]
    res = read_json(out / "results.json")
    assert not res["failed"] and len(res["evaluations"]) == sum(
        j["task"] == "evaluate" for j in plan["jobs"])
    assert res["verdicts"]["identity"]["status"] == "holds"  # exact on trained layers
    assert res["hardware"].startswith("CPU: ")  # the timing table names the machine
    curve = res["evaluations"]["eval-pgd-complex-gr"]
    assert curve["eps"] == plan["eps"] and curve["n_images"] == plan["n_images"]
    assert all(res["training"][t]["epochs_done"] == 1 for t in plan["models"].values())
    md = (out / "report.md").read_text()
    assert "Verdict" in md and "![PGD(8) robustness curves](figures/robustness_pgd.png)" in md

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.safetensors")}
    t0 = time.perf_counter()
    assert main(argv) == 0
    assert time.perf_counter() - t0 < 20
    assert f"{n} already finished, 0 to run" in capsys.readouterr().err
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.safetensors")}
    assert len(read_jsonl(out / "log.jsonl")) == n  # nothing ran twice

    _restored_elsewhere_trains_nothing(tmp_path, out, argv, n, capsys)

    other = ["reproduce", "--dataset", "fashion-mnist", "--budget", "quick", "--out", str(out)]
    assert main(other) == 2  # another reproduction's directory is refused, one line
    assert "holds another reproduction" in capsys.readouterr().err


def _restored_elsewhere_trains_nothing(tmp_path, out, argv, n, capsys):
    """tools/paper_export.sh exports the report with the kept runs (config and metrics, no
    weights) and restores them into a fresh directory, as on another machine: the same
    command there runs nothing and reports the same training results, each marked as kept."""
    script = Path(__file__).resolve().parents[1] / "tools" / "paper_export.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    fresh = tmp_path / "fresh"
    for cmd, run in (("export", out), ("restore", fresh)):
        subprocess.run(["bash", str(script), cmd, "fashion-mnist", str(run)], cwd=tmp_path,
                       env=env, check=True, capture_output=True)
    doc = tmp_path / "docs" / "paper" / "fashion-mnist"
    assert not list(doc.rglob("*.safetensors")) and (doc / "kept").is_dir()
    capsys.readouterr()
    assert main([*argv[:-3], str(fresh), *argv[-2:]]) == 0
    assert f"{n} already finished, 0 to run" in capsys.readouterr().err
    before, after = read_json(out / "results.json"), read_json(fresh / "results.json")
    assert {k: t["final"] for k, t in after["training"].items()} == {
        k: t["final"] for k, t in before["training"].items()}
    assert all(t["kept"] for t in after["training"].values()) and not after["pending"]
    assert not list(fresh.glob("runs/*/model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["svhn", "cifar10"])
def test_tiny_reproduce_on_native_svhn_and_cifar_files(tmp_path, dataset, capsys):
    """SVHN and CIFAR-10 run the same pipeline, from files in their native formats."""
    from test_data_formats import write_cifar_batch, write_svhn

    root = tmp_path / "data"
    if dataset == "svhn":
        (root / "svhn").mkdir(parents=True)
        write_svhn(root / "svhn" / "train_32x32.mat", 160, seed=1)
        write_svhn(root / "svhn" / "test_32x32.mat", 40, seed=2)
    else:
        d = root / "cifar10" / "cifar-10-batches-py"
        d.mkdir(parents=True)
        for i in range(1, 6):
            write_cifar_batch(d / f"data_batch_{i}", 32, seed=i)
        write_cifar_batch(d / "test_batch", 40, seed=9)
    out = tmp_path / "rep"
    argv = ["reproduce", "--dataset", dataset, "--budget", "tiny", "--out", str(out),
            "--device", "cpu", "--data-root", str(root)]
    assert main(argv) == 0, capsys.readouterr().err
    res = read_json(out / "results.json")
    plan = read_json(out / "plan.json")
    assert not res["failed"]
    assert plan["archs"]["real"] == ("CIFARNet1" if dataset == "cifar10" else "MNISTNetV0")
    assert (out / "figures" / "robustness_pgd.png").stat().st_size > 0
    assert res["verdicts"]["identity"]["status"] == "holds"
