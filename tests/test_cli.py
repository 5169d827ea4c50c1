"""Command-line conventions: entry points, exit codes, --json / --quiet / --data-root everywhere,
progress bars only on a terminal."""

from __future__ import annotations

import argparse
import ast
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cvgr
from cvgr import progress
from cvgr.checkpoint import CheckpointError, NoCheckpoint
from cvgr.cli import build_parser, main
from cvgr.errors import RunError, UserError
from cvgr.train import TrainingDiverged

SRC = Path(cvgr.__file__).parent


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """'train', 'data list', ... -> its parser."""
    out = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}".strip())
                return
        out[prefix] = parser

    walk(build_parser(), "")
    return out


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


NUMBERS = ("train", "attack", "eval", "transfer", "autoattack", "models", "data list",
           "benchmark", "zoo list")
READS_DATA = ("train", "attack", "eval", "transfer", "autoattack", "reproduce", "data list",
              "data fetch", "benchmark", "zoo train", "zoo evaluate")


def test_every_command_follows_the_conventions():
    subs = subcommands()
    assert set(NUMBERS) | set(READS_DATA) <= set(subs)
    for name in NUMBERS:
        assert "--json" in options(subs[name]), f"cvgr {name} lacks --json"
    for name, parser in subs.items():
        assert "--quiet" in options(parser), f"cvgr {name} lacks --quiet"
    for name in READS_DATA:
        assert "--data-root" in options(subs[name]), f"cvgr {name} lacks --data-root"


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag, capsys):
    with pytest.raises(SystemExit) as e:
        main([flag])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"cvgr {cvgr.__version__}"


def _python_m(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "cvgr", *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def test_python_m_cvgr():
    r = _python_m("-V")
    assert r.returncode == 0 and r.stdout.strip() == f"cvgr {cvgr.__version__}"
    r = _python_m("attack")  # RUN_DIR missing: argparse's usage error
    assert r.returncode == 2 and "required: RUN_DIR" in r.stderr and r.stdout == ""
    r = _python_m()
    assert r.returncode == 2 and "COMMAND" in r.stdout and "2 usage error" in r.stdout


@pytest.mark.parametrize("error, code", [
    (UserError("bad option value"), 2),
    (NoCheckpoint("no model here"), 2),
    (RunError("the work failed"), 1),
    (CheckpointError("corrupt weights"), 1),
    (TrainingDiverged("loss became nan"), 1),
    (PermissionError(13, "Permission denied", "/somewhere/a.json"), 1),
    (IsADirectoryError(21, "Is a directory", "/somewhere"), 1),
])
def test_exit_code_follows_the_exception_type(error, code, monkeypatch, capsys):
    from cvgr.cli import models as models_cli

    def fail(args):
        raise error

    monkeypatch.setattr(models_cli, "run", fail)  # bound when the parser is built
    assert main(["models"]) == code
    err = capsys.readouterr().err
    assert err.startswith("cvgr models: error: ") and err.count("\n") == 1
    if isinstance(error, OSError):
        assert f"{error.filename}: {error.strerror}" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["attack", "run", "--steps", "many"])
    assert e.value.code == 2 and "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty, wanted, drawn", [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False)])
def test_bar_only_when_wanted_and_stderr_is_a_terminal(tty, wanted, drawn, monkeypatch):
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    assert progress.enabled(wanted) is drawn
    for _ in progress.bar(range(3), desc="counting", progress=wanted):
        pass
    assert ("counting" in stream.getvalue()) is drawn
    progress.note("epoch 1 done")  # messages are not bars: shown either way, on stderr
    assert "epoch 1 done" in stream.getvalue()


def test_every_progress_bar_goes_through_the_helper():
    """tqdm is imported in cvgr.progress only, so no bar escapes the terminal rule."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "progress.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "tqdm" for n in names):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


@pytest.mark.parametrize("error, text", [
    (UserError("batch_size must be >= 1, got 0", param="batch_size"),
     "--batch-size must be >= 1, got 0"),
    (UserError("out runs/a is a directory", param="out"), "--out runs/a is a directory"),
    (UserError("cannot read eps 'x'", param="eps"), "cannot read eps 'x' (--eps)"),
    (UserError("dataset 'x' not found", param="data_root"), "dataset 'x' not found (--data-root)"),
    (UserError("stepsize is odd", param="step"), "stepsize is odd (--step)"),  # whole word only
    (UserError("no parameter named"), "no parameter named"),
])
def test_core_parameters_become_flags(error, text):
    from cvgr.cli._common import error_text

    assert error_text(error) == text


@pytest.mark.parametrize("quiet", [True, False])
def test_reproduce_quiet_reaches_the_core(quiet, tmp_path, monkeypatch, capsys):
    import cvgr.experiments

    seen = {}

    def fake(*args, **kw):
        seen.update(kw)
        return {"verdicts": {"claim": {"status": "holds", "text": "fine"}},
                "outcome": {"failed": [], "ran": [], "skipped": []},
                "report": tmp_path / "o" / "report.md"}

    monkeypatch.setattr(cvgr.experiments, "reproduce", fake)
    argv = ["reproduce", "--budget", "tiny", "--out", str(tmp_path / "o")]
    assert main(argv + ["--quiet"] * quiet) == 0
    out, err = capsys.readouterr()
    assert "claim" in out and "holds" in out  # the verdicts: the result, always printed
    assert seen["quiet"] is quiet and err == ""  # one setting reaches the core
    assert "progress" not in seen and "log" not in seen
