"""Bad input gets a one-line error before any work; nothing computes a wrong number silently.

Each test here is one row of docs/reliability.md.
"""

from __future__ import annotations

import array
import errno
import fcntl
import math
import os
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from cvgr.attacks import fgsm, nes, pgd
from cvgr.checkpoint import save_model
from cvgr.cli import main
from cvgr.errors import UserError
from cvgr.io import check_output_dir, check_output_file
from test_attacks import FASHION

needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed")


def cli(*argv, capsys):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- a directory nobody may write in, even root -----------------------------------------------

_GETFLAGS, _SETFLAGS, _IMMUTABLE = 0x80086601, 0x40086602, 0x10


def _writable(d: Path) -> bool:
    try:
        (d / ".probe").touch()
    except OSError:
        return False
    (d / ".probe").unlink()
    return True


def _immutable(d: Path, on: bool) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _GETFLAGS, flags, True)
        flags[0] = flags[0] | _IMMUTABLE if on else flags[0] & ~_IMMUTABLE
        fcntl.ioctl(fd, _SETFLAGS, flags, True)
    finally:
        os.close(fd)


@pytest.fixture
def readonly_dir(tmp_path):
    """An existing directory that takes no new file: mode 0555, and immutable when we are root
    (root ignores the mode). Skipped only where neither can be arranged."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    immutable = False
    if _writable(d):
        try:
            _immutable(d, True)
            immutable = True
        except OSError:
            pass
    if _writable(d):
        pytest.skip("cannot make a read-only directory here (root without chattr support)")
    yield d
    if immutable:
        _immutable(d, False)
    d.chmod(0o755)


# -- attack parameters -------------------------------------------------------------------------


def _toy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    return model, torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize("fn, kw, param", [
    (pgd, {"step_size": float("nan")}, "step_size"),
    (pgd, {"step_size": -1.0}, "step_size"),
    (pgd, {"step_size": 0.0}, "step_size"),
    (pgd, {"step_size": float("inf")}, "step_size"),
    (pgd, {"steps": 0}, "steps"),
    (pgd, {"steps": 2.5}, "steps"),
    (pgd, {"restarts": 0}, "restarts"),
    (pgd, {"norm": "l3"}, "norm"),
    (nes, {"sigma": 0.0}, "sigma"),
    (nes, {"sigma": float("nan")}, "sigma"),
    (nes, {"queries": 0}, "queries"),
    (nes, {"steps": -1}, "steps"),
    (nes, {"step_size": -0.1}, "step_size"),
    (nes, {"chunk": 0}, "chunk"),
    (fgsm, {"norm": "l1"}, "norm"),
])
def test_attack_parameters_checked_in_core(fn, kw, param):
    model, x, y = _toy()
    for eps in (0.1, 0.0):  # eps 0 returns early: the check comes first all the same
        with pytest.raises(UserError) as e:
            fn(model, x, y, eps, **kw)
        assert e.value.param == param and param in str(e.value)


@pytest.mark.parametrize("eps", [float("nan"), -0.1, 1.5, float("inf"), "x", True])
def test_attack_eps_checked(eps):
    model, x, y = _toy()
    with pytest.raises(UserError) as e:
        pgd(model, x, y, eps)
    assert e.value.param == "eps"


def test_good_parameters_still_attack():
    """The checks refuse nothing valid: a real step moves images, inside the ball."""
    model, x, y = _toy()
    for fn, kw in ((pgd, {"step_size": 0.05, "steps": 2}), (nes, {"sigma": 0.01, "queries": 5}),
                   (fgsm, {})):
        xa = fn(model, x, y, 0.1, **kw)
        assert 0 < (xa - x).abs().max() <= 0.1 + 1e-6 and torch.isfinite(xa).all()


def test_eps_grid_is_capped():
    from cvgr.evaluate import MAX_EPS_POINTS, parse_eps, robustness_curve

    assert len(parse_eps("0:0.999:0.001")) == MAX_EPS_POINTS  # exactly the cap is allowed
    with pytest.raises(UserError) as e:
        parse_eps("0:1e-9:1e-15")
    assert e.value.param == "eps" and "1000001 values" in str(e.value)
    with pytest.raises(UserError, match="cannot read eps"):
        parse_eps("0:nan:0.1")
    model, x, y = _toy()
    with pytest.raises(UserError, match="more than 1000"):
        robustness_curve(model, x, y, "fgsm", [0.0] * (MAX_EPS_POINTS + 1), progress=False)
    with pytest.raises(UserError, match="no values"):
        robustness_curve(model, x, y, "fgsm", [], progress=False)


# -- output paths ------------------------------------------------------------------------------


def test_check_output_file_and_dir(tmp_path, readonly_dir):
    assert check_output_file(tmp_path / "new" / "deeper" / "a.json") == \
        tmp_path / "new" / "deeper" / "a.json"
    assert not (tmp_path / "new").exists()  # the check leaves nothing behind
    check_output_dir(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    (tmp_path / "f").write_text("x")
    cases = [
        (check_output_file, tmp_path, "is a directory"),
        (check_output_file, tmp_path / "f" / "a.json", "is a file, not a directory"),
        (check_output_file, readonly_dir / "a.json", "cannot write in"),
        (check_output_file, readonly_dir / "sub" / "a.json", "cannot write in"),
        (check_output_dir, tmp_path / "f", "is a file"),
        (check_output_dir, readonly_dir, "cannot write in"),
        (check_output_dir, readonly_dir / "run", "cannot write in"),
    ]
    for fn, path, words in cases:
        with pytest.raises(UserError, match=words) as e:
            fn(path, "out")
        assert e.value.param == "out"
    assert os.listdir(readonly_dir) == []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from cvgr.models import build

    d = tmp_path_factory.mktemp("runs") / "mlp"
    torch.manual_seed(0)
    save_model(build("MNISTMLP"), d / "model.safetensors",
               {"arch": "MNISTMLP", "complex": False, "dataset": "fashion-mnist", "seed": 0})
    return d


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if an attack or an evaluation starts."""
    import cvgr.evaluate

    def boom(*a, **k):
        raise AssertionError("work started before the bad input was refused")

    for name in ("robustness_curve", "transfer_matrix", "accuracy", "autoattack"):
        monkeypatch.setattr(cvgr.evaluate, name, boom)


@needs_fashion
@pytest.mark.parametrize("argv, words", [
    # the core names the parameter (step_size); the command line shows its flag (--step-size)
    (["--step-size", "-1"], "--step-size must be a finite number > 0, got -1.0"),
    (["--step-size", "0"], "--step-size must be a finite number > 0"),
    (["--step-size", "nan"], "--step-size must be a finite number > 0, got nan"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--restarts", "0"], "--restarts must be >= 1"),
    (["--attack", "nes", "--sigma", "0"], "--sigma must be a finite number > 0, got 0.0"),
    (["--attack", "nes", "--queries", "0"], "--queries must be >= 1"),
    (["--eps", "0:1e-9:1e-15"], "more than 1000"),
    (["--eps", "nan"], "not finite"),
    (["--check-limit", "0"], "--check-limit must be >= 1"),
])
def test_attack_cli_bad_parameter(run_dir, tmp_path, no_work, argv, words, capsys):
    out = tmp_path / "a.json"
    rc, _, err = cli("attack", run_dir, "--eps", "0,0.05,0.1", *argv, "--out", out,
                     capsys=capsys)
    assert rc == 2 and words in err and one_line(err), err
    assert not out.exists()


@needs_fashion
def test_output_checked_before_work(run_dir, tmp_path, readonly_dir, no_work, capsys):
    (tmp_path / "file").write_text("x")
    bad_files = [readonly_dir / "a.json", tmp_path, tmp_path / "file" / "a.json"]
    for out in bad_files:
        rc, _, err = cli("attack", run_dir, "--eps", "0.1", "--out", out, capsys=capsys)
        assert rc == 2 and one_line(err) and "out " in err, err
        rc, _, err = cli("attack", run_dir, "--eps", "0.1", "--out", tmp_path / "ok.json",
                         "--save-examples", out, capsys=capsys)
        assert rc == 2 and one_line(err) and "--save-examples" in err, err
        rc, _, err = cli("eval", run_dir, "--out", out, capsys=capsys)
        assert rc == 2 and one_line(err), err
        rc, _, err = cli("transfer", run_dir, run_dir, "--eps", "0.1", "--out", out,
                         capsys=capsys)
        assert rc == 2 and one_line(err), err
    # the default output beside a run in a read-only directory
    rc, _, err = cli("attack", readonly_dir, "--eps", "0.1", capsys=capsys)
    assert rc == 2 and one_line(err)


@needs_fashion
def test_autoattack_output_checked_before_work(run_dir, readonly_dir, no_work, capsys):
    pytest.importorskip("art")
    rc, _, err = cli("autoattack", run_dir, "--eps", "0.1", "--out", readonly_dir / "a.json",
                     capsys=capsys)
    assert rc == 2 and one_line(err) and "cannot write in" in err, err


@needs_fashion
def test_late_write_failure_is_one_line(run_dir, tmp_path, monkeypatch, capsys):
    import cvgr.evaluate.tasks

    def full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(cvgr.evaluate.tasks, "write_json", full)
    rc, text, err = cli("eval", run_dir, "--limit", 20, "--out", tmp_path / "e.json",
                        capsys=capsys)
    assert rc == 1 and one_line(err) and "No space left on device" in err, err
    assert "clean accuracy" in text  # the result was printed before the write failed


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    """Weights files (safetensors replaces its temporary file) get 0666 & ~umask."""
    from cvgr.io import write_json

    old = os.umask(0o022)
    try:
        m = save_model(nn.Linear(2, 2), tmp_path / "m.safetensors",
                       {"arch": "x", "complex": False})
        j = write_json(tmp_path / "a.json", {"a": 1})
        os.umask(0o077)
        k = write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(m.stat().st_mode) == 0o644
    assert stat.S_IMODE(j.stat().st_mode) == 0o644
    assert stat.S_IMODE(k.stat().st_mode) == 0o600


@needs_fashion
def test_train_and_reproduce_refuse_readonly_out(readonly_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out in (readonly_dir / "run", readonly_dir, tmp_path / "file", tmp_path / "file" / "r"):
        rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP",
                         "--epochs", 1, "--limit-train", 64, "--out", out, "--device", "cpu",
                         capsys=capsys)
        assert rc == 2 and one_line(err) and f"out {out}" in err, err
        rc, _, err = cli("reproduce", "--budget", "tiny", "--out", out, "--device", "cpu",
                         capsys=capsys)
        assert rc == 2 and one_line(err) and f"out {out}" in err, err
    rc, _, err = cli("reproduce", "--report-only", "--out", readonly_dir, capsys=capsys)
    assert rc == 2 and one_line(err), err


# -- checkpoints and example files -------------------------------------------------------------


def _weights_file(path: Path, record: str, nan: bool = False) -> Path:
    """A safetensors file written without cvgr, holding an MNISTMLP's weights and `record`."""
    from safetensors.torch import save_file

    from cvgr.models import build

    state = {k: v.clone().contiguous() for k, v in build("MNISTMLP").state_dict().items()}
    if nan:
        next(iter(state.values()))[0].fill_(float("nan"))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"cvgr": record})
    return path


GOOD_RECORD = '{"arch": "MNISTMLP", "complex": false, "dataset": "fashion-mnist"}'


@pytest.mark.parametrize("record, nan, words, code", [  # code: 1 damaged, 2 fixed by --import
    (GOOD_RECORD, True, "holds NaN", 1),
    ('{"arch": "ResNet9000", "complex": false}', False, "does not know", 2),
    ('{"arch": "MNISTMLP", "complex": fals', False, "record is not JSON", 1),
    ('["MNISTMLP"]', False, "lacks 'arch'", 1),
    ('{"arch": "MNISTMLP", "complex": false, "normalize": 3}', False, "do not build a model", 1),
])
def test_bad_checkpoints_refused(tmp_path, record, nan, words, code, capsys):
    import cvgr

    p = _weights_file(tmp_path / "run" / "model.safetensors", record, nan)
    with pytest.raises(UserError, match=words):
        cvgr.load(p)
    rc, _, err = cli("eval", p.parent, capsys=capsys)
    assert rc == code and words in err and one_line(err), err


def test_good_checkpoint_still_loads(tmp_path):
    import cvgr

    p = _weights_file(tmp_path / "model.safetensors", GOOD_RECORD)
    assert cvgr.load(p).record["arch"] == "MNISTMLP"


def _examples(path: Path, **fields) -> Path:
    import numpy as np

    base = {"x": np.full((1, 3, 1, 28, 28), 0.5, np.float32), "y": np.array([0, 1, 2]),
            "eps": np.array([0.1]), "dataset": np.array("fashion-mnist"),
            "attack": np.array("pgd"), "norm": np.array("linf"), "source": np.array("{}")}
    base.update(fields)
    with open(path, "wb") as f:
        np.savez(f, **{k: v for k, v in base.items() if v is not None})
    return path


def test_bad_example_files_refused(tmp_path, run_dir, capsys):
    import numpy as np

    from cvgr.evaluate import load_examples

    nan_x = np.full((1, 3, 1, 28, 28), 0.5, np.float32)
    nan_x[0, 1, 0, 3, 3] = np.nan
    cases = {
        "nan.npz": ({"x": nan_x}, "NaN or inf"),
        "labels.npz": ({"y": np.array([0, 1, 10])}, "labels outside the classes 0..9"),
        "negative.npz": ({"y": np.array([0, -1, 2])}, "labels outside the classes"),
        "float-labels.npz": ({"y": np.array([0.0, 1.0, 2.0])}, "expected integers"),
        "none.npz": ({"x": np.zeros((1, 0, 1, 28, 28), np.float32), "y": np.zeros(0, int)},
                     "holds no images"),
        "source.npz": ({"source": np.array("{not json")}, "'source' is not JSON"),
        "source-list.npz": ({"source": np.array("[1]")}, "not a JSON object"),
        "eps.npz": ({"eps": np.array([np.nan])}, "eps [nan] are not all finite"),
    }
    for name, (fields, words) in cases.items():
        p = _examples(tmp_path / name, **fields)
        with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
            load_examples(p)
        rc, _, err = cli("eval", run_dir, "--examples", p, capsys=capsys)
        assert rc == 2 and one_line(err) and words in err, (name, err)
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "nothing.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    for name, words in (("empty.npz", "not a readable .npz"), ("nothing.npz", "lacks"),
                        ("array.npy", "not a readable .npz")):
        rc, _, err = cli("eval", run_dir, "--examples", tmp_path / name, capsys=capsys)
        assert rc == 2 and one_line(err) and words in err, (name, err)
    ok = load_examples(_examples(tmp_path / "ok.npz"))
    assert ok["x"].shape == (1, 3, 1, 28, 28) and ok["y"].tolist() == [0, 1, 2]


# -- data roots and data files -----------------------------------------------------------------


def _idx_dataset(d: Path, size: int = 28, n: int = 6) -> Path:
    import numpy as np

    from cvgr.data.readers import write_idx

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for img, lab in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        write_idx(d / img, rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(d / lab, rng.integers(0, 10, n, dtype=np.uint8))
    return d


@needs_fashion
def test_named_data_root_must_hold_the_data(tmp_path, capsys):
    """Fashion-MNIST is installed system-wide, yet a root the user names is the only place."""
    from cvgr.data import find, load, locate

    assert find("fashion-mnist")[0] is not None  # the copy a fallback would have taken
    for root, words in ((tmp_path / "typo", "does not exist"),
                        (tmp_path, "not found in"),
                        (_idx_dataset(tmp_path / "x" / "mnist").parent, "not found in")):
        with pytest.raises(UserError, match=words) as e:
            locate("fashion-mnist", root)
        assert e.value.param == "data_root"
        rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP",
                         "--epochs", 1, "--out", tmp_path / "r", "--data-root", root,
                         capsys=capsys)
        assert rc == 2 and one_line(err) and words in err, err
        assert not (tmp_path / "r").exists()
    mine = _idx_dataset(tmp_path / "mine" / "fashion-mnist")
    assert locate("fashion-mnist", tmp_path / "mine") == mine
    assert load("fashion-mnist", "test", tmp_path / "mine")[0].shape == (6, 1, 28, 28)


def test_directory_where_a_data_file_belongs(tmp_path, capsys):
    from cvgr.data import locate

    d = _idx_dataset(tmp_path / "fashion-mnist")
    (d / "t10k-images-idx3-ubyte").unlink()
    (d / "t10k-images-idx3-ubyte").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        locate("fashion-mnist", tmp_path)
    rc, _, err = cli("data", "list", "--data-root", tmp_path, capsys=capsys)
    assert rc == 2 and one_line(err) and "t10k-images-idx3-ubyte is a directory" in err, err


def test_idx_file_of_another_image_size(tmp_path, capsys):
    from cvgr.data import Loader

    _idx_dataset(tmp_path / "fashion-mnist", size=32)
    with pytest.raises(UserError, match=r"images are \(1, 32, 32\), but fashion-mnist images "
                                        r"are \(1, 28, 28\)"):
        Loader("fashion-mnist", "test", 4, train=False, root=tmp_path)
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
                     "--out", tmp_path / "r", "--data-root", tmp_path, capsys=capsys)
    assert rc == 2 and one_line(err) and "train-images-idx3-ubyte" in err, err


def test_config_records_the_data_really_used(tmp_path, capsys):
    import json

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
                     "--batch-size", 4, "--out", tmp_path / "r", "--data-root", tmp_path / "data",
                     "--device", "cpu", "--no-progress", capsys=capsys)
    assert rc == 0, err
    env = json.loads((tmp_path / "r" / "config.json").read_text())["environment"]
    assert env["data_root"] == str(tmp_path / "data")
    assert env["data_dir"] == str(tmp_path / "data" / "fashion-mnist")
    assert env["gr_step"] is None  # no GR in this run
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
                     "--batch-size", 4, "--beta", 1, "--out", tmp_path / "g", "--data-root",
                     tmp_path / "data", "--device", "cpu", "--no-progress", capsys=capsys)
    assert rc == 0, err
    env = json.loads((tmp_path / "g" / "config.json").read_text())["environment"]
    assert env["gr_step"] == "eager"  # auto, on a 2-batch epoch
    for mode, want in (("exact", "traced"), ("fd", "eager")):  # fd has no traced step
        out = tmp_path / f"g-{mode}"
        rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs",
                         1, "--batch-size", 4, "--beta", 1, "--gr-mode", mode, "--gr-step",
                         "traced", "--out", out, "--data-root", tmp_path / "data", "--device",
                         "cpu", "--no-progress", capsys=capsys)
        assert rc == 0, err
        assert json.loads((out / "config.json").read_text())["environment"]["gr_step"] == want


# -- one process per output directory ----------------------------------------------------------

_HOLD = """
import sys, time
from cvgr.io import locked_dir
with locked_dir(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(path: Path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path, capsys):
    import signal
    import socket

    from cvgr.io import locked_dir

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    train = ["train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
             "--batch-size", 4, "--out", tmp_path / "run", "--data-root", tmp_path / "data",
             "--device", "cpu", "--no-progress"]
    repro = ["reproduce", "--budget", "tiny", "--out", tmp_path / "rep", "--data-root",
             tmp_path / "data", "--device", "cpu"]
    procs = [_holder(tmp_path / "run"), _holder(tmp_path / "rep")]
    try:
        for argv, proc in ((train, procs[0]), (repro, procs[1])):
            rc, _, err = cli(*argv, capsys=capsys)
            assert rc == 2 and one_line(err), err
            assert f"in use by another cvgr process (pid {proc.pid} on " \
                   f"{socket.gethostname()} since 20" in err
        assert not (tmp_path / "run" / "config.json").exists()  # the loser wrote nothing
        assert not (tmp_path / "rep" / "plan.json").exists()
        with pytest.raises(UserError, match=f"pid {procs[0].pid}"):
            with locked_dir(tmp_path / "run"):
                pass
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # the kernel dropped the killed holder's lock: no stale lock blocks the next run
    rc, _, err = cli(*train, capsys=capsys)
    assert rc == 0, err
    with locked_dir(tmp_path / "rep"):
        pass


def test_lock_file_does_not_make_a_directory_foreign(tmp_path):
    from cvgr.io import LOCK_FILE, locked_dir

    with locked_dir(tmp_path / "r") as d:
        assert (d / LOCK_FILE).is_file()
    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    rc = main(["train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", "1",
               "--batch-size", "4", "--out", str(tmp_path / "r"), "--data-root",
               str(tmp_path / "data"), "--device", "cpu", "--no-progress"])
    assert rc == 0


# -- recovery ----------------------------------------------------------------------------------


def _train_argv(tmp_path: Path, out: Path, *extra) -> list:
    return ["train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--batch-size", 4,
            "--out", out, "--data-root", tmp_path / "data", "--device", "cpu", "--no-progress",
            *extra]


def test_corrupt_model_file_is_rebuilt_from_the_state(tmp_path, capsys):
    import cvgr
    from cvgr.train import TrainConfig, train

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    out = tmp_path / "run"

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTMLP", epochs=2, batch_size=4)
    with pytest.raises(Stop):
        train(cfg, out, progress=False, quiet=True, device="cpu", data_root=tmp_path / "data",
              callback=stop)
    (out / "model.safetensors").write_bytes(b"\0garbage")
    with pytest.raises(UserError, match="not a readable safetensors"):
        cvgr.load(out)
    rc, _, err = cli(*_train_argv(tmp_path, out, "--epochs", 2, "--resume"), capsys=capsys)
    assert rc == 0, err
    assert cvgr.load(out).record["epochs_completed"] == 2
    # a finished run whose model file is damaged: the same command rebuilds it
    (out / "model.safetensors").write_bytes(b"")
    rc, _, err = cli(*_train_argv(tmp_path, out, "--epochs", 2), capsys=capsys)
    assert rc == 0, err
    assert cvgr.load(out).record["finished"]


def test_divergence_advice_is_actionable(tmp_path, capsys):
    import json

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=16)
    out = tmp_path / "run"
    rc, _, err = cli(*_train_argv(tmp_path, out, "--epochs", 2, "--lr", 1e30), capsys=capsys)
    # diverged training is an error at run time: exit code 1
    assert rc == 1 and one_line(err) and "new run in another output directory" in err, err
    assert "lower lr" in err
    # the advice works: a run's settings are fixed, so the same directory refuses a lower lr ...
    rc, _, err = cli(*_train_argv(tmp_path, out, "--epochs", 2, "--lr", 1e-3, "--resume"),
                     capsys=capsys)
    assert rc == 2 and one_line(err) and "holds a different run" in err and "lr" in err, err
    # ... and a new run with it trains
    rc, _, err = cli(*_train_argv(tmp_path, tmp_path / "run2", "--epochs", 2, "--lr", 1e-3),
                     capsys=capsys)
    assert rc == 0, err
    rows = [json.loads(x) for x in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
