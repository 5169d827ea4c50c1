"""Run every bad input of docs/reliability.md through the real `cvgr` command; print the table.

    .venv/bin/python tools/reliability_table.py > /tmp/table.md

Needs Fashion-MNIST (`make data`) and root or a non-root user (for the read-only directory:
mode 0555, made immutable too when run as root). Takes a few minutes: one tiny training run,
then about forty short commands, each a fresh process.
"""

from __future__ import annotations

import array
import fcntl
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CVGR = [str(Path(sys.executable).parent / "cvgr")]


def run(argv: list[str]) -> tuple[int, str]:
    p = subprocess.run([*CVGR, *argv], capture_output=True, text=True,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    return p.returncode, (err[-1] if err else "")


def hold(argv: list[str], d: Path) -> subprocess.Popen:
    """Start `cvgr ARGV` and wait until it holds D's lock."""
    p = subprocess.Popen([*CVGR, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        f = d / ".cvgr.lock"
        if f.is_file() and f.read_text().strip():
            return p
        time.sleep(0.5)
    raise SystemExit(f"cvgr {shlex.join(argv)} never took the lock")


def immutable(d: Path, on: bool) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, 0x80086601, flags, True)
        flags[0] = flags[0] | 0x10 if on else flags[0] & ~0x10
        fcntl.ioctl(fd, 0x40086602, flags, True)
    finally:
        os.close(fd)


def weights(path: Path, record: str, nan: bool = False) -> None:
    from safetensors.torch import save_file

    from cvgr.models import build

    state = {k: v.clone().contiguous() for k, v in build("MNISTMLP").state_dict().items()}
    if nan:
        next(iter(state.values()))[0].fill_(float("nan"))
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / "model.safetensors"), metadata={"cvgr": record})


def examples(path: Path, **fields: np.ndarray) -> Path:
    base = {"x": np.full((1, 3, 1, 28, 28), 0.5, np.float32), "y": np.array([0, 1, 2]),
            "eps": np.array([0.1]), "dataset": np.array("fashion-mnist"),
            "attack": np.array("pgd"), "norm": np.array("linf"), "source": np.array("{}")}
    base.update(fields)
    with open(path, "wb") as f:
        np.savez(f, **base)
    return path


def idx_dataset(d: Path, size: int) -> None:
    from cvgr.data.readers import write_idx

    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for img, lab in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        write_idx(d / img, rng.integers(0, 256, (8, size, size), dtype=np.uint8))
        write_idx(d / lab, rng.integers(0, 10, 8, dtype=np.uint8))


def main() -> None:  # noqa: PLR0915 -- one case per line
    os.umask(0o022)
    w = Path(tempfile.mkdtemp(prefix="cvgr-rel-"))
    os.chdir(w)
    ro = Path("ro")
    ro.mkdir()
    ro.chmod(0o555)
    is_root = os.geteuid() == 0
    if is_root:
        immutable(ro, True)
    Path("file").write_text("x")
    train = ["train", "--dataset", "fashion-mnist", "--arch", "MNISTMLP", "--device", "cpu",
             "--quiet"]
    rc, err = run([*train, "--epochs", "1", "--limit-train", "512", "--limit-test", "200",
                   "--out", "run"])
    assert rc == 0, err
    nan_x = np.full((1, 3, 1, 28, 28), 0.5, np.float32)
    nan_x[0, 1, 0, 3, 3] = np.nan
    weights(Path("nan-run"), '{"arch": "MNISTMLP", "complex": false, "dataset": '
                             '"fashion-mnist"}', nan=True)
    weights(Path("arch-run"), '{"arch": "ResNet9000", "complex": false}')
    weights(Path("json-run"), '{"arch": "MNISTMLP", "complex": fals')
    examples(Path("nan.npz"), x=nan_x)
    examples(Path("labels.npz"), y=np.array([0, 1, 10]))
    examples(Path("none.npz"), x=np.zeros((1, 0, 1, 28, 28), np.float32), y=np.zeros(0, int))
    examples(Path("source.npz"), source=np.array("{not json"))
    Path("empty.npz").write_bytes(b"")
    idx_dataset(Path("big") / "fashion-mnist", 32)
    idx_dataset(Path("dirfile") / "fashion-mnist", 28)
    os.unlink("dirfile/fashion-mnist/t10k-images-idx3-ubyte")
    os.mkdir("dirfile/fashion-mnist/t10k-images-idx3-ubyte")
    Path("empty-root").mkdir()
    attack = ["attack", "run", "--limit", "50", "--eps", "0,0.05,0.1"]
    cases: list[tuple[str, list[str]]] = [
        ("PGD step size negative", [*attack, "--step-size", "-1"]),
        ("PGD step size zero", [*attack, "--step-size", "0"]),
        ("PGD step size NaN", [*attack, "--step-size", "nan"]),
        ("PGD steps zero", [*attack, "--steps", "0"]),
        ("PGD restarts zero", [*attack, "--restarts", "0"]),
        ("NES sigma zero", [*attack, "--attack", "nes", "--sigma", "0"]),
        ("NES queries zero", [*attack, "--attack", "nes", "--queries", "0"]),
        ("eps grid of a million points", ["attack", "run", "--eps", "0:1e-9:1e-15"]),
        ("eps NaN", ["attack", "run", "--eps", "nan"]),
        ("eps above 1 (L-inf)", ["attack", "run", "--eps", "0:1.5:0.5"]),
        ("masking checks on zero images", [*attack, "--check-limit", "0"]),
        ("attack --out in a read-only directory", [*attack, "--out", "ro/a.json"]),
        ("attack --out an existing directory", [*attack, "--out", "run"]),
        ("attack --out below a file", [*attack, "--out", "file/a.json"]),
        ("attack --save-examples in a read-only directory",
         [*attack, "--save-examples", "ro/ex.npz"]),
        ("eval --out in a read-only directory", ["eval", "run", "--out", "ro/e.json"]),
        ("transfer --out in a read-only directory",
         ["transfer", "run", "run", "--eps", "0.1", "--out", "ro/t.json"]),
        ("autoattack --out in a read-only directory",
         ["autoattack", "run", "--eps", "0.1", "--out", "ro/a.json"]),
        ("train --out in a read-only directory", [*train, "--epochs", "1", "--out", "ro/r"]),
        ("train --out a file", [*train, "--epochs", "1", "--out", "file"]),
        ("reproduce --out in a read-only directory",
         ["reproduce", "--budget", "tiny", "--out", "ro/rep"]),
        ("checkpoint with NaN weights", ["eval", "nan-run"]),
        ("checkpoint record naming an unknown architecture", ["eval", "arch-run"]),
        ("checkpoint record that is not JSON", ["eval", "json-run"]),
        ("examples with a NaN image", ["eval", "run", "--examples", "nan.npz"]),
        ("examples with a label outside the classes", ["eval", "run", "--examples",
                                                       "labels.npz"]),
        ("examples file with zero images", ["eval", "run", "--examples", "none.npz"]),
        ("empty .npz file (0 bytes)", ["eval", "run", "--examples", "empty.npz"]),
        ("examples whose `source` is not JSON", ["eval", "run", "--examples", "source.npz"]),
        ("--data-root with a typo", [*train, "--epochs", "1", "--out", "r1",
                                     "--data-root", "/usr/share/datsets"]),
        ("--data-root that lacks the dataset", [*train, "--epochs", "1", "--out", "r2",
                                                "--data-root", "empty-root"]),
        ("a directory where a data file belongs", [*train, "--epochs", "1", "--out", "r3",
                                                   "--data-root", "dirfile"]),
        ("IDX files of 32x32 images for Fashion-MNIST", [*train, "--epochs", "1", "--out",
                                                         "r4", "--data-root", "big"]),
        ("diverging training (lr 1e30)", [*train, "--epochs", "2", "--limit-train", "256",
                                          "--limit-test", "50", "--lr", "1e30", "--out",
                                          "div"]),
        ("resume that run with a lower lr", [*train, "--epochs", "2", "--limit-train", "256",
                                             "--limit-test", "50", "--lr", "1e-3", "--out",
                                             "div", "--resume"]),
    ]
    rows = []
    for what, argv in cases:
        rc, err = run(argv)
        rows.append((what, argv, rc, err))
    # two processes, one directory: a real holder, then the same command after it is killed
    held = [*train, "--epochs", "2", "--limit-train", "20000", "--limit-test", "500", "--out",
            "busy-run"]
    repro = ["reproduce", "--budget", "tiny", "--out", "busy-rep"]
    holders = [hold(held, Path("busy-run"))]
    rows.append(("a second `cvgr train` into a directory a running `cvgr train` holds", held,
                 *run(held)))
    holders.append(hold(repro, Path("busy-rep")))
    rows.append(("a second `cvgr reproduce` into a directory a running reproduction holds",
                 repro, *run(repro)))
    for p in holders:
        p.send_signal(signal.SIGKILL)
        p.wait()
    rc, err = run([*held, "--resume"])
    rows.append(("the same command with `--resume` after the holder was killed (kill -9)",
                 [*held, "--resume"], rc, err or "(takes the lock and finishes the run)"))
    # recovery: a damaged model file beside an intact state
    Path("run/model.safetensors").write_bytes(b"\0garbage")
    rc, err = run([*train, "--epochs", "1", "--limit-train", "512", "--limit-test", "200",
                   "--out", "run", "--resume"])
    rows.append(("damaged run/model.safetensors, then the run's command with --resume",
                 ["train", "...", "--out", "run", "--resume"], rc,
                 err or "(model.safetensors rebuilt from state.safetensors)"))
    mode = stat.S_IMODE(Path("run/model.safetensors").stat().st_mode)
    rows.append(("mode of a weights file written under umask 022", ["train", "..."], 0,
                 f"{mode:04o}"))
    print("| bad input | command | exit | what it gets |\n|---|---|---|---|")
    for what, argv, rc, err in rows:
        cmd = "cvgr " + shlex.join(argv)
        print(f"| {what} | `{cmd}` | {rc} | {err.replace('|', '/')} |")
    if is_root:
        immutable(ro, False)
    ro.chmod(0o755)
    shutil.rmtree(w)


if __name__ == "__main__":
    main()
