"""Bad input gets a one-line error before any work; nothing computes a wrong number silently.

Each test here is one row of docs/reliability.md.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
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
from cvgr.errors import CvgrError, RunError, UserError
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
    from cvgr.models import create_model

    d = tmp_path_factory.mktemp("runs") / "mlp"
    torch.manual_seed(0)
    save_model(create_model("MNISTMLP"), d / "model.safetensors",
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
    (["--check-images", "0"], "--check-images must be >= 1"),
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
    rc, text, err = cli("eval", run_dir, "--n-images", 20, "--out", tmp_path / "e.json",
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
                         "--epochs", 1, "--train-images", 64, "--out", out, "--device", "cpu",
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

    from cvgr.models import create_model

    state = {k: v.clone().contiguous() for k, v in create_model("MNISTMLP").state_dict().items()}
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
    with pytest.raises(CvgrError, match=words) as e:
        cvgr.load(p)
    assert e.value.exit_code == code
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
        Loader("fashion-mnist", "test", 4, train=False, data_root=tmp_path)
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
                     "--out", tmp_path / "r", "--data-root", tmp_path, capsys=capsys)
    assert rc == 2 and one_line(err) and "train-images-idx3-ubyte" in err, err


def test_config_records_the_data_really_used(tmp_path, capsys):
    import json

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
                     "--batch-size", 4, "--out", tmp_path / "r", "--data-root", tmp_path / "data",
                     "--device", "cpu", "--quiet", capsys=capsys)
    assert rc == 0, err
    env = json.loads((tmp_path / "r" / "config.json").read_text())["environment"]
    assert env["data_root"] == str(tmp_path / "data")
    assert env["data_dir"] == str(tmp_path / "data" / "fashion-mnist")
    assert env["gr_step"] is None  # no GR in this run
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs", 1,
                     "--batch-size", 4, "--beta", 1, "--out", tmp_path / "g", "--data-root",
                     tmp_path / "data", "--device", "cpu", "--quiet", capsys=capsys)
    assert rc == 0, err
    env = json.loads((tmp_path / "g" / "config.json").read_text())["environment"]
    assert env["gr_step"] == "eager"  # auto, on a 2-batch epoch
    for mode, want in (("exact", "traced"), ("fd", "eager")):  # fd has no traced step
        out = tmp_path / f"g-{mode}"
        rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--epochs",
                         1, "--batch-size", 4, "--beta", 1, "--gr-mode", mode, "--gr-step",
                         "traced", "--out", out, "--data-root", tmp_path / "data", "--device",
                         "cpu", "--quiet", capsys=capsys)
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
             "--device", "cpu", "--quiet"]
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
               str(tmp_path / "data"), "--device", "cpu", "--quiet"])
    assert rc == 0


# -- recovery ----------------------------------------------------------------------------------


def _train_argv(tmp_path: Path, out: Path, *extra) -> list:
    return ["train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--batch-size", 4,
            "--out", out, "--data-root", tmp_path / "data", "--device", "cpu", "--quiet",
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
    with pytest.raises(RunError, match="not a readable safetensors"):
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


# == issue 17: nothing written outside the place given, no number from invalid input ==========


def _stop_after(epochs: int):
    """A training callback that stops the run after `epochs` epochs (raises _Stop)."""
    seen = []

    def cb(row):
        seen.append(row)
        if len(seen) >= epochs:
            raise _Stop

    return cb


class _Stop(Exception):
    pass


@pytest.mark.parametrize("kind", ["fifo", "symlink", "loop", "device"])
def test_output_that_is_no_regular_file_is_refused(tmp_path, kind, capsys):
    """A FIFO, a device, a symlink (even a loop) given as an output is refused, never
    replaced: renaming over it would replace it, and following a link writes elsewhere."""
    from cvgr.io import atomic_write, write_json

    target = tmp_path / "target.json"
    target.write_text("keep")
    out = tmp_path / "out.json"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "symlink":
        out.symlink_to(target)
    elif kind == "loop":
        out.symlink_to(out)
    else:
        out = Path("/dev/null")
    before = os.lstat(out)
    with pytest.raises(UserError) as e:
        check_output_file(out, "out")
    assert e.value.param == "out" and "regular file" in str(e.value)
    with pytest.raises(UserError):
        write_json(out, {"a": 1})
    with pytest.raises(UserError):
        atomic_write(out, lambda tmp: None)
    after = os.lstat(out)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert target.read_text() == "keep" and not Path("/dev/null.png").exists()


def test_links_inside_an_output_directory_are_not_followed(tmp_path):
    """A .cvgr.lock or log.jsonl that links elsewhere gets nothing written through it."""
    from cvgr.io import append_jsonl, locked_dir

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    d = tmp_path / "out"
    d.mkdir()
    (d / ".cvgr.lock").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        with locked_dir(d):
            pass
    (d / "log.jsonl").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        append_jsonl(d / "log.jsonl", {"a": 1})
    assert victim.read_text() == "precious\n"
    os.mkfifo(d / "fifo.jsonl")
    with pytest.raises(UserError, match="FIFO"):
        append_jsonl(d / "fifo.jsonl", {"a": 1})


def test_an_output_never_overwrites_its_input(run_dir, tmp_path, no_work, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "state.safetensors").write_bytes(b"state")
    model = run / "model.safetensors"
    before = model.read_bytes()
    for argv in (["eval", run, "--out", model],
                 ["eval", model, "--out", model],
                 ["attack", run, "--eps", "0.1", "--save-examples", run / "state.safetensors"],
                 ["attack", model, "--eps", "0.1", "--out", run / "config.json"],
                 ["transfer", run, run, "--eps", "0.1", "--out", model]):
        rc, _, err = cli(*argv, capsys=capsys)
        assert rc == 2 and one_line(err) and "an input of this command" in err, (argv, err)
    assert model.read_bytes() == before and (run / "state.safetensors").read_bytes() == b"state"
    ex = tmp_path / "ex.npz"
    _examples(ex)
    rc, _, err = cli("eval", run, "--examples", ex, "--out", ex, capsys=capsys)
    assert rc == 2 and "an input of this command" in err, err


def _fake_result():
    from cvgr.benchmarking import BenchmarkResult

    return BenchmarkResult(dataset="fashion-mnist", threat_model="Linf", eps=0.1, n_images=4,
                           version="custom", clean_accuracy=0.5, robust_accuracy=0.25,
                           attacks=[{"attack": "apgd-ce", "robust_accuracy": 0.25}],
                           images={}, robust_indices=[0], seconds=0.1, device="cpu",
                           versions={}, seed=0)


def test_benchmark_output_checked_before_work(run_dir, tmp_path, no_work, monkeypatch, capsys):
    import cvgr

    model = cvgr.load(run_dir)
    for bad in (tmp_path, Path("/tmp")):
        with pytest.raises(UserError) as e:
            cvgr.benchmark(model, "fashion-mnist", n_images=4, save=bad)
        assert e.value.param == "save"
        rc, _, err = cli("benchmark", run_dir, "--n-images", 4, "--out", bad, capsys=capsys)
        assert rc == 2 and one_line(err) and "--out" in err, err
    assert not any(Path("/").glob(".tmp.*.tmp"))
    # the numbers on stdout, "wrote FILE" on stderr (and not even there with --quiet)
    monkeypatch.setattr(cvgr, "benchmark", lambda *a, **k: _fake_result())
    rc, out, err = cli("benchmark", run_dir, "--n-images", 4, "--out", tmp_path / "b.json",
                       capsys=capsys)
    assert rc == 0 and "robust 0.2500" in out and "wrote" not in out and "wrote" in err
    rc, out, err = cli("benchmark", run_dir, "--n-images", 4, "--out", tmp_path / "b.json",
                       "--quiet", capsys=capsys)
    assert rc == 0 and "wrote" not in out + err
    assert json.loads((tmp_path / "b.json").read_text())["robust_accuracy"] == 0.25


def test_unreachable_ray_address_fails_in_seconds(tmp_path, capsys):
    import time

    from cvgr.experiments import reproduce
    from cvgr.experiments.ray_executor import RayOptions

    t0 = time.monotonic()
    with pytest.raises(UserError, match="no Ray head answers") as e:
        reproduce("fashion-mnist", "tiny", tmp_path / "rep", executor="ray",
                  ray=RayOptions(address="127.0.0.1:1"))
    assert e.value.param == "address" and time.monotonic() - t0 < 15
    rc, _, err = cli("reproduce", "--budget", "tiny", "--out", tmp_path / "rep", "--executor",
                     "ray", "--ray-address", "127.0.0.1:1", capsys=capsys)
    assert rc == 2 and one_line(err) and "--ray-address" in err, err
    assert not (tmp_path / "rep").exists()


class _NaNModel(nn.Module):
    def __init__(self, value=float("nan")):
        super().__init__()
        self.lin, self.value = nn.Linear(784, 10), value

    def forward(self, x):
        out = self.lin(x.flatten(1))
        return out.masked_fill(torch.arange(len(x))[:, None] == 1, self.value)


class _OneRow(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):  # answers (1, 10) for any batch larger than 2
        out = self.lin(x.flatten(1))
        return out if len(x) <= 2 else out[:1]


class _IntLogits(_OneRow):
    def forward(self, x):
        return self.lin(x.flatten(1)).round().long()


class _IgnoresInput(_OneRow):
    def forward(self, x):
        return self.lin.weight[:, :1].T.expand(len(x), 10) * 1.0


@needs_fashion
@pytest.mark.parametrize("model, kw, words", [
    (_NaNModel(), {}, "NaN or inf on 2 of 8"),  # row 1 of each batch of 4
    (_NaNModel(float("inf")), {}, "NaN or inf"),
    (_OneRow(), {}, "one row per image"),
    (_IntLogits(), {}, "float logits"),
    (_IgnoresInput(), {}, "does not depend on its input"),
    (_OneRow(), {"version": "custom", "attacks": 5}, "attacks must be a string"),
])
def test_benchmark_refuses_models_that_give_no_meaningful_number(model, kw, words, no_work):
    import cvgr

    with pytest.raises(UserError, match=words):
        cvgr.benchmark(model, "fashion-mnist", n_images=8, batch_size=4, **kw)


@pytest.mark.parametrize("fn, kw, param", [
    (nes, {"sigma": 1e39}, "sigma"),     # finite in float64, inf in float32
    (nes, {"sigma": 2.0}, "sigma"),      # probes outside the image box
    (nes, {"sigma": 1e-30}, "sigma"),    # probes that change no pixel
    (pgd, {"step_size": 1e-30}, "step_size"),
    (pgd, {"step_size": 1e39}, "step_size"),
    (nes, {"step_size": 1e-30}, "step_size"),
])
def test_attack_scales_that_move_nothing_are_refused(fn, kw, param):
    model, x, y = _toy()
    with pytest.raises(UserError) as e:
        fn(model, x, y, 0.1, **kw)
    assert e.value.param == param


def test_attacks_refuse_nan_images():
    model, x, y = _toy()
    x[0, 0, 0, 0] = float("nan")
    for fn in (pgd, nes, fgsm):
        with pytest.raises(UserError, match="NaN or inf"):
            fn(model, x, y, 0.1)


@needs_fashion
def test_attack_cli_refuses_scales_that_move_nothing(run_dir, tmp_path, no_work, capsys):
    for argv in (["--attack", "nes", "--sigma", "1e39"], ["--step-size", "1e-30"]):
        rc, _, err = cli("attack", run_dir, "--eps", "0.1", *argv, "--out", tmp_path / "a.json",
                         capsys=capsys)
        assert rc == 2 and one_line(err) and argv[-2] in err, err


def _zoo_copy(tmp_path: Path, monkeypatch, name: str = "real-none") -> Path:
    import shutil

    from cvgr import zoo

    d = tmp_path / "zoo" / "fashion-mnist"
    d.mkdir(parents=True)
    for suffix in (".safetensors", ".eval.json"):
        shutil.copy(zoo.PACKAGE_ROOT / "fashion-mnist" / f"{name}{suffix}", d)
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "zoo"))
    return d / f"{name}.safetensors"


def test_zoo_weights_are_checked_against_their_sha256(tmp_path, monkeypatch, capsys):
    import cvgr
    from cvgr.checkpoint import read_record
    from cvgr.errors import RunError

    wf = _zoo_copy(tmp_path, monkeypatch)
    model = cvgr.load("zoo:fashion-mnist/real-none")  # intact: loads
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    save_model(model, wf, read_record(wf))  # tampered weights, the zoo's record kept
    with pytest.raises(RunError, match="does not match the sha256"):
        cvgr.load("zoo:fashion-mnist/real-none")
    rc, _, err = cli("benchmark", "zoo:fashion-mnist/real-none", "--n-images", 4, capsys=capsys)
    assert rc == 1 and one_line(err) and "sha256" in err, err


def test_zoo_model_has_no_directory_to_write_into(tmp_path, monkeypatch, no_work, capsys):
    _zoo_copy(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    for cmd in (["attack", "zoo:fashion-mnist/real-none", "--eps", "0.1"],
                ["autoattack", "zoo:fashion-mnist/real-none", "--eps", "0.1"]):
        rc, _, err = cli(*cmd, capsys=capsys)
        assert rc == 2 and one_line(err) and "zoo model" in err and "--out" in err, err
    assert not (tmp_path / "zoo:fashion-mnist").exists()


def test_test_set_of_no_images(tmp_path, run_dir, capsys):
    """0 images: one line before any work, not a traceback or val_acc NaN."""
    from cvgr.data import Loader

    data = tmp_path / "data"
    _idx_dataset(data / "fashion-mnist", n=0)
    with pytest.raises(UserError, match="holds no images"):
        Loader("fashion-mnist", "test", 4, train=False, data_root=data)
    rc, out, err = cli(*_train_argv(tmp_path, tmp_path / "r", "--epochs", 1, "--json"),
                       capsys=capsys)
    assert rc == 2 and one_line(err) and "holds no images" in err and "limit" not in err, err
    assert not (tmp_path / "r").exists() and out == ""
    for cmd in (["eval", run_dir], ["attack", run_dir, "--eps", "0.1", "--out",
                                    tmp_path / "a.json"]):
        rc, _, err = cli(*cmd, "--data-root", data, capsys=capsys)
        assert rc == 2 and one_line(err) and "holds no images" in err, err


def test_json_written_by_cvgr_never_holds_nan(tmp_path):
    from cvgr.io import append_jsonl, to_json, write_json

    doc = {"val_acc": float("nan"), "x": [float("inf"), 1.0], "t": torch.tensor(float("nan"))}
    for text in (to_json(doc), to_json(doc, indent=None)):
        assert json.loads(text, parse_constant=_no_constant) == {
            "val_acc": None, "x": [None, 1.0], "t": None}
    write_json(tmp_path / "a.json", doc)
    append_jsonl(tmp_path / "b.jsonl", doc)
    for f in ("a.json", "b.jsonl"):
        json.loads((tmp_path / f).read_text(), parse_constant=_no_constant)


def _no_constant(name):
    raise AssertionError(f"invalid JSON constant {name}")


def test_disk_full_while_training_is_one_line(tmp_path, monkeypatch, capsys):
    from safetensors import SafetensorError

    import cvgr.checkpoint

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: '
                              'StorageFull, message: "No space left on device" })')

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    monkeypatch.setattr(cvgr.checkpoint, "save_file", full)
    rc, _, err = cli(*_train_argv(tmp_path, tmp_path / "r", "--epochs", 1), capsys=capsys)
    assert rc == 1 and one_line(err) and "No space left on device" in err, err
    assert "state.safetensors" in err or "model.safetensors" in err


def test_damaged_reproduction_files_are_one_line(tmp_path, capsys):
    from cvgr.experiments import build_plan, report_only
    from cvgr.io import write_json

    out = tmp_path / "rep"
    out.mkdir()
    plan = build_plan("fashion-mnist", "tiny")
    for text in ('{"jobs": [', "[1, 2]", '{"jobs": 3}'):
        (out / "plan.json").write_text(text)
        with pytest.raises(UserError, match="plan.json"):
            report_only(out)
        for argv in (["--report-only"], ["--budget", "tiny"]):
            rc, _, err = cli("reproduce", "--out", out, *argv, capsys=capsys)
            assert rc == 2 and one_line(err) and "plan.json" in err, err
    write_json(out / "plan.json", plan)
    ev = next(j for j in plan["jobs"] if j["task"] != "train")
    (out / "evals").mkdir()
    (out / "evals" / f"{ev['id']}.json").write_text('{"config": {"trunc')
    rc, text, err = cli("reproduce", "--out", out, "--report-only", capsys=capsys)
    assert rc == 0 and "wrote" in err and "wrote" not in text, err
    assert (out / "report.md").is_file()


def test_examples_with_no_eps_sets_are_refused(tmp_path, run_dir, capsys):
    import numpy as np

    ex = _examples(tmp_path / "noeps.npz", x=np.zeros((0, 3, 1, 28, 28), np.float32),
                   eps=np.zeros(0))
    rc, _, err = cli("eval", run_dir, "--examples", ex, capsys=capsys)
    assert rc == 2 and one_line(err) and "no eps sets" in err, err


def test_eps_grid_of_tiny_steps_keeps_its_values():
    from cvgr.evaluate import parse_eps

    grid = parse_eps("0:1e-11:1e-12")
    assert len(grid) == 11 == len(set(grid)) and grid[1] == 1e-12 and grid[-1] == 1e-11
    assert parse_eps("0:0.3:0.02")[-1] == 0.3 and parse_eps("0:0.3:0.02")[3] == 0.06
    with pytest.raises(UserError, match="too small to tell"):
        parse_eps("1:1.0000000000000002:1e-17")


def test_closed_stdout_is_one_line(monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "stdout", None)
    rc = main(["models"])
    err = capsys.readouterr().err
    assert rc == 1 and one_line(err) and "stdout is closed" in err, err


@needs_fashion
def test_messages_blame_the_right_thing(run_dir, tmp_path, no_work, capsys):
    rc, _, err = cli("attack", run_dir, "--eps", "0.1", "--check-eps", "nan", "--out",
                     tmp_path / "a.json", capsys=capsys)
    assert rc == 2 and err.count("--check-eps") >= 1 and "--eps " not in err, err
    from cvgr.evaluate.autoattack import parse_attacks

    with pytest.raises(UserError, match="out of range"):
        parse_attacks("square:queries=1e12")
    assert parse_attacks("square:queries=1e3")[0]["queries"] == 1000
    rc, _, err = cli("train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--lr", -1,
                     "--out", tmp_path / "r", capsys=capsys)
    assert rc == 2 and "--lr must be a finite number > 0" in err, err
    bad = _weights_file(tmp_path / "ds" / "model.safetensors",
                        '{"arch": "MNISTMLP", "complex": false, "dataset": "nope"}')
    rc, _, err = cli("eval", bad.parent, capsys=capsys)
    assert rc == 2 and one_line(err) and "record names a dataset" in err, err


def test_config_command_is_shell_quoted(tmp_path, capsys):
    import shlex

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    out = tmp_path / "my run"
    rc, _, err = cli(*_train_argv(tmp_path, out, "--epochs", 1), capsys=capsys)
    assert rc == 0, err
    command = json.loads((out / "config.json").read_text())["command"]
    argv = shlex.split(command)
    assert argv[argv.index("--out") + 1] == str(out)


def test_partial_runs_are_not_read_as_finished(tmp_path, monkeypatch, capsys):
    import cvgr
    import cvgr.train.loop
    from cvgr.checkpoint import UnfinishedRun
    from cvgr.train import TrainConfig, train

    _idx_dataset(tmp_path / "data" / "fashion-mnist", n=8)
    out = tmp_path / "run"
    cfg = TrainConfig(dataset="fashion-mnist", arch="MNISTMLP", epochs=3, batch_size=4)
    kw = {"progress": False, "quiet": True, "device": "cpu", "data_root": tmp_path / "data"}
    # stopped during the first epoch: no untrained model.safetensors
    with monkeypatch.context() as m:
        m.setattr(cvgr.train.loop, "train_epoch", lambda *a, **k: (_ for _ in ()).throw(_Stop))
        with pytest.raises(_Stop):
            train(cfg, out, **kw)
    assert (out / "state.safetensors").is_file() and not (out / "model.safetensors").exists()
    # stopped after epoch 1 of 3: refused, naming its last epoch, unless allowed
    with pytest.raises(_Stop):
        train(cfg, out, resume=True, callback=_stop_after(1), **kw)
    with pytest.raises(UnfinishedRun, match="last epoch 1 of 3"):
        cvgr.load(out)
    assert cvgr.load(out, allow_unfinished=True).record["epochs_completed"] == 1
    for cmd in (["eval", out], ["benchmark", out, "--n-images", 4],
                ["attack", out, "--eps", "0.1", "--out", tmp_path / "a.json"]):
        rc, _, err = cli(*cmd, "--data-root", tmp_path / "data", capsys=capsys)
        assert rc == 2 and one_line(err) and "last epoch 1 of 3" in err, err
        assert "--allow-unfinished" in err
    rc, text, err = cli("eval", out, "--data-root", tmp_path / "data", "--allow-unfinished",
                        "--json", capsys=capsys)
    assert rc == 0, err
    assert json.loads(text)["model"]["epochs_completed"] == 1
    assert json.loads(text)["model"]["finished"] is False
    # --resume without the resume state: refused, the model left as it is
    before = (out / "model.safetensors").read_bytes()
    (out / "state.safetensors").unlink()
    rc, _, err = cli(*_train_argv(tmp_path, out, "--epochs", 3, "--resume"), capsys=capsys)
    assert rc == 2 and one_line(err) and "state.safetensors" in err, err
    assert (out / "model.safetensors").read_bytes() == before
