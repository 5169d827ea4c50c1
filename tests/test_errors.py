"""One error policy: the core raises UserError naming a parameter; the CLI shows its flag."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

import cvgr
from cvgr.cli import main
from cvgr.cli._common import error_text, flag
from cvgr.errors import CvgrError, RunError, UserError
from cvgr.names import AdvKind, Attack, GRMode, defense_name
from cvgr.train import TrainConfig


def test_user_error_keeps_its_param_across_processes():
    e = pickle.loads(pickle.dumps(UserError("lr must be > 0", param="lr")))
    assert isinstance(e, UserError) and str(e) == "lr must be > 0" and e.param == "lr"
    assert UserError("plain").param is None
    r = pickle.loads(pickle.dumps(RunError("diverged", param="lr")))
    assert type(r) is RunError and r.param == "lr"


def test_run_error_is_not_a_user_error():
    """Code that handles bad input (`except UserError`) must not swallow failed work."""
    assert not issubclass(RunError, UserError) and not issubclass(UserError, RunError)
    assert issubclass(RunError, CvgrError) and issubclass(UserError, CvgrError)
    assert (UserError.exit_code, RunError.exit_code) == (2, 1)
    with pytest.raises(RunError):
        try:
            raise RunError("the work failed")
        except UserError:  # pragma: no cover - the point: this must not catch it
            pytest.fail("a RunError was caught as a UserError")


@pytest.mark.parametrize("msg, param, shown", [
    ("weight_decay must be >= 0, got -1", "weight_decay", "--weight-decay must be >= 0, got -1"),
    ("output directory /x is a file", "out", "output directory /x is a file (--out)"),
    ("unknown thing", None, "unknown thing"),
    ("workers must be >= 1", "workers", "--jobs must be >= 1"),  # the one mapping table
    ("imports m: no such file", "imports", "--import m: no such file"),
])
def test_cli_shows_the_flag_of_the_parameter(msg, param, shown):
    assert error_text(UserError(msg, param=param)) == shown
    assert flag("train_images") == "--train-images" and flag("data_root") == "--data-root"


def test_bad_training_setting_is_one_line_with_the_flag(tmp_path, capsys):
    rc = main(["train", "--dataset", "fashion-mnist", "--arch", "MNISTNetV0", "--weight-decay",
               "-1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "cvgr train: error: --weight-decay must be >= 0, got -1.0" in err


def test_core_messages_name_no_flag():
    """No UserError raised in the core spells a command-line flag (command examples in
    backticks, such as `cvgr data fetch NAME`, are allowed)."""
    src = Path(cvgr.__file__).parent
    call = re.compile(r"(?:UserError|CheckpointError|TrainingDiverged)\(\s*f?\"((?:[^\"\\]|\\.)*)"
                      r"\"(?:\s*f?\"((?:[^\"\\]|\\.)*)\")*")
    bad = []
    for f in src.rglob("*.py"):
        if "cli" in f.relative_to(src).parts:
            continue
        for m in call.finditer(f.read_text()):
            text = re.sub(r"`[^`]*`", "", m.group(0))
            if re.search(r"(?<![\w`])--[a-z]", text):
                bad.append(f"{f.name}: {m.group(0)[:80]}")
    assert not bad, bad


def test_names_are_defined_once():
    assert [str(m) for m in GRMode] == ["exact", "reference", "fd"]
    assert [str(m) for m in AdvKind] == ["pgd", "fgsm"] and "nes" in list(Attack)
    # the one defense namer: the trainer and the plan agree (GR + noise is "gr+noise")
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1", complex=True, beta=64,
                      noise=0.05).resolved()
    assert cfg.defense == defense_name(beta=64, noise=0.05) == "gr+noise"
    assert defense_name(adv_eps=0.1, adv_steps=8, beta=1.0) == "pgd8+gr"
    assert defense_name(adv_eps=0.1, adv_kind="fgsm") == "fgsm"
    assert defense_name(beta=1.0, gr_mode="fd") == "gr-fd" and defense_name() == "none"
    assert TrainConfig(dataset="mnist", arch="MNISTNetV0", gr_mode=GRMode.FD, beta=1.0
                       ).resolved().to_dict()["gr_mode"] == "fd"
