"""`cvgr train` as a researcher types it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import cvgr
from cvgr.cli import build_parser, main
from cvgr.models import resolve

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    for action in sub._actions:
        if action.option_strings and action.dest != "help" and action.help != argparse.SUPPRESS:
            assert action.help, f"{action.option_strings} has no help"
            assert action.option_strings[0] in text
    assert "GR + noise" in text and "--adv-eps" in text
    assert "TRADES" in text and "--trades" in text and "GR + PGD AT" in text


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST files not installed")
def test_paper_command_runs(tmp_path, capsys):
    out = tmp_path / "runs" / "c64"
    rc = main(["train", "--dataset", "fashion-mnist", "--complex",  # --arch: the dataset's
               "--beta", "64", "--noise", "0.05", "--epochs", "1", "--out", str(out),
               "--train-images", "128", "--test-images", "64", "--device", "cpu",
               "--data-root", str(FMNIST), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)  # stdout holds the JSON document and nothing else
    assert metrics["epoch"] == 1 and metrics["gr"] > 0
    assert "epoch   1/1" in captured.err  # epoch lines are progress messages, on stderr
    model = cvgr.load(out)
    assert model.record["defense"]["name"] == "gr+noise" and model.record["complex"]
    stored = json.loads((out / "config.json").read_text())["config"]["arch"]
    assert stored == resolve("MNISTNetV1").name  # fashion-mnist's complex net


@pytest.mark.parametrize("dataset, complex_flag, arch", [
    ("fashion-mnist", [], "MNISTNetV0"),
    ("fashion-mnist", ["--complex"], "MNISTNetV1"),
    ("cifar10", ["--complex"], "CIFARNet1"),
])
def test_arch_defaults_to_the_datasets_paper_net(dataset, complex_flag, arch):
    from cvgr.cli.train import config_from_args
    from cvgr.data import DATASETS

    args = build_parser().parse_args(["train", "--dataset", dataset, *complex_flag,
                                      "--out", "r"])
    cfg = config_from_args(args)
    settings = DATASETS[dataset].settings
    assert cfg.arch == arch == (settings.complex_arch if complex_flag else settings.real_arch)
    assert cfg.resolved().arch == resolve(arch).name
    given = build_parser().parse_args(["train", "--dataset", dataset, "--arch", "MNISTMLP",
                                       "--out", "r"])
    assert config_from_args(given).arch == "MNISTMLP"  # an explicit --arch wins


@pytest.mark.parametrize("argv, words", [
    (["--arch", "ResNet50"], "unknown architecture"),
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--beta", "-1"], "--beta must be >= 0"),
    (["--adv-eps", "2"], "--adv-eps must be [0, 1]"),
    (["--trades", "6"], "--trades needs adv_eps > 0"),
    (["--trades", "-1", "--adv-eps", "0.1"], "--trades must be >= 0"),
    (["--trades", "6", "--adv-eps", "0.1", "--beta", "1"], "--trades with GR"),
    (["--trades", "6", "--adv-eps", "0.1", "--adv-kind", "fgsm"], "(--adv-kind)"),
    (["--adv-eps", "0.1", "--adv-steps", "0"], "--adv-steps must be >= 1"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, words):
    base = {"--dataset": "fashion-mnist", "--arch": "MNISTNetV0"}
    for k, v in zip(argv[::2], argv[1::2], strict=True):
        base[k] = v
    args = [x for kv in base.items() for x in kv]
    rc = main(["train", *args, "--out", str(tmp_path / "r"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and words in err and len(err.splitlines()) == 1
    assert err.startswith("cvgr train: error:")
    assert not (tmp_path / "r").exists()
