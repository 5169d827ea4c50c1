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


def run(argv: list[str], env: dict[str, str] | None = None, prefix: list[str] = CVGR,
        shell_tail: str = "") -> tuple[int, str]:
    """Run `cvgr ARGV` (or PREFIX ARGV); the exit code and the last line on stderr. With
    `shell_tail` (e.g. ">&-") the command runs through bash with that redirection."""
    cmd: list[str] | str = [*prefix, *argv]
    if shell_tail:
        cmd = ["bash", "-c", shlex.join(cmd) + " " + shell_tail]
    p = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {})})
    err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    return p.returncode, (err[-1] if err else "")


PY = [sys.executable, "-c"]
PY_MODEL = ("import cvgr, torch; from torch import nn\n"
            "class M(nn.Module):\n"
            "    def __init__(s): super().__init__(); s.l = nn.Linear(784, 10)\n"
            "    def forward(s, x): return {out}\n")
BENCH = "cvgr.benchmark(M(), 'fashion-mnist', n_images=20, batch_size=10{extra})"


def py_case(what: str, forward: str, extra: str = "") -> tuple[str, list[str], dict]:
    """A case run through Python: a model whose forward returns `forward`, benchmarked."""
    code = PY_MODEL.format(out=forward) + BENCH.format(extra=extra)
    return what, [*PY, code], {"prefix": []}


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

    from cvgr.models import create_model

    state = {k: v.clone().contiguous() for k, v in create_model("MNISTMLP").state_dict().items()}
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


def idx_dataset(d: Path, size: int, n: int = 8) -> None:
    from cvgr.data.readers import write_idx

    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for img, lab in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        write_idx(d / img, rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(d / lab, rng.integers(0, 10, n, dtype=np.uint8))


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
    rc, err = run([*train, "--epochs", "1", "--train-images", "512", "--test-images", "200",
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
    issue17_fixtures()
    attack = ["attack", "run", "--n-images", "50", "--eps", "0,0.05,0.1"]
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
        ("masking checks on zero images", [*attack, "--check-images", "0"]),
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
        ("diverging training (lr 1e30)", [*train, "--epochs", "2", "--train-images", "256",
                                          "--test-images", "50", "--lr", "1e30", "--out",
                                          "div"]),
        ("resume that run with a lower lr", [*train, "--epochs", "2", "--train-images", "256",
                                             "--test-images", "50", "--lr", "1e-3", "--out",
                                             "div", "--resume"]),
    ]
    rows = []
    for what, argv in cases:
        rc, err = run(argv)
        rows.append((what, argv, rc, err))
    for what, argv, kw in issue17_cases(train):
        if kw.pop("pre", None) == "rm-div-state":
            os.unlink("div/state.safetensors")
        ok = kw.pop("ok", "")
        rc, err = run(argv, **kw)
        err = err or ok
        shown = argv if kw.get("prefix") != [] else ["python", "-c", "..."]
        rows.append((what, shown + ([kw["shell_tail"]] if kw.get("shell_tail") else []), rc, err))
    # two processes, one directory: a real holder, then the same command after it is killed
    held = [*train, "--epochs", "2", "--train-images", "20000", "--test-images", "500", "--out",
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
    rc, err = run([*train, "--epochs", "1", "--train-images", "512", "--test-images", "200",
                   "--out", "run", "--resume"])
    rows.append(("damaged run/model.safetensors, then the run's command with --resume",
                 ["train", "...", "--out", "run", "--resume"], rc,
                 err or "(model.safetensors rebuilt from state.safetensors)"))
    mode = stat.S_IMODE(Path("run/model.safetensors").stat().st_mode)
    rows.append(("mode of a weights file written under umask 022", ["train", "..."], 0,
                 f"{mode:04o}"))
    print("| bad input | command | exit | what it gets |\n|---|---|---|---|")
    for what, argv, rc, err in rows:
        cmd = (("" if argv[0] == "python" else "cvgr ") + shlex.join(argv)).replace("'>&-'",
                                                                                    ">&-")
        print(f"| {what} | `{cmd}` | {rc} | {err.replace('|', '/')} |")
    if is_root:
        immutable(ro, False)
    ro.chmod(0o755)
    shutil.rmtree(w)


def issue17_fixtures() -> None:
    """What the cases of issue 17 need: links, a FIFO, unfinished and tampered models."""
    from cvgr import zoo
    from cvgr.experiments import build_plan
    from cvgr.io import write_json

    Path("victim").write_text("precious\n")
    os.mkfifo("fifo.json")
    os.symlink("victim", "link.json")
    os.symlink("loop.json", "loop.json")
    os.mkdir("lockrun")
    os.symlink("../victim", "lockrun/.cvgr.lock")
    os.mkdir("rep-link")
    write_json("rep-link/plan.json", build_plan("fashion-mnist", "tiny"))
    os.symlink("../victim", "rep-link/log.jsonl")
    weights(Path("unfinished"), '{"arch": "MNISTMLP", "complex": false, "dataset": '
                                '"fashion-mnist", "epochs": 30, "epochs_completed": 0, '
                                '"finished": false}')
    weights(Path("nods-run"), '{"arch": "MNISTMLP", "complex": false, "dataset": "nope"}')
    huge = Path("huge-run")
    weights(huge, '{"arch": "MNISTMLP", "complex": false, "dataset": "fashion-mnist"}')
    from safetensors.torch import load_file, save_file

    state = {k: v * 1e30 for k, v in load_file(str(huge / "model.safetensors")).items()}
    save_file(state, str(huge / "model.safetensors"),
              metadata={"cvgr": '{"arch": "MNISTMLP", "complex": false, "dataset": '
                                '"fashion-mnist"}'})
    tz = Path("tampered-zoo") / "fashion-mnist"
    tz.mkdir(parents=True)
    for suffix in (".safetensors", ".eval.json"):
        shutil.copy(zoo.PACKAGE_ROOT / "fashion-mnist" / f"real-none{suffix}", tz)
    from cvgr.checkpoint import read_record, save_model
    from cvgr.models import create_model

    rec = read_record(tz / "real-none.safetensors")
    save_model(create_model(rec["arch"], complex=rec["complex"]), tz / "real-none.safetensors", rec)
    examples(Path("noeps.npz"), x=np.zeros((0, 3, 1, 28, 28), np.float32), eps=np.zeros(0))
    idx_dataset(Path("zero") / "fashion-mnist", 28, n=0)
    os.mkdir("evalrun")
    shutil.copy("run/model.safetensors", "evalrun/model.safetensors")
    for d, text in (("badplan", '{"jobs": ['), ("listplan", "[1, 2]")):
        os.mkdir(d)
        Path(d, "plan.json").write_text(text)
    os.mkdir("trunc-rep")
    plan = build_plan("fashion-mnist", "tiny")
    write_json("trunc-rep/plan.json", plan)
    os.mkdir("trunc-rep/evals")
    ev = next(j for j in plan["jobs"] if j["task"] != "train")
    Path("trunc-rep/evals", f"{ev['id']}.json").write_text('{"config": {"trunc')


def issue17_cases(train: list[str]) -> list[tuple[str, list[str], dict]]:
    """Issue 17's bad inputs, each a real command (a few through Python: the library API)."""
    attack = ["attack", "run", "--n-images", "50", "--eps", "0,0.05,0.1"]
    zoo_env = {"env": {"CVGR_ZOO_DIR": "tampered-zoo"}}
    small = [*train, "--epochs", "1", "--train-images", "64", "--test-images", "20"]
    return [
        ("`--out /dev/null` (a device; cvgr runs as root here)",
         ["eval", "run", "--out", "/dev/null"], {}),
        ("`--out` a FIFO", ["eval", "run", "--out", "fifo.json"], {}),
        ("`--out` a symlink to another file", ["eval", "run", "--out", "link.json"], {}),
        ("`--out` a symlink loop", ["eval", "run", "--out", "loop.json"], {}),
        ("`.cvgr.lock` in the output directory links to another file",
         [*small, "--out", "lockrun"], {}),
        ("`log.jsonl` in a reproduction directory links to another file",
         ["reproduce", "--budget", "tiny", "--out", "rep-link", "--quiet"], {}),
        ("eval output over the run's own weights",
         ["eval", "evalrun", "--out", "evalrun/model.safetensors"], {}),
        ("attack examples over the run's resume state",
         [*attack, "--save-examples", "run/state.safetensors"], {}),
        ("eval of a weights file, output over that file",
         ["eval", "evalrun/model.safetensors", "--out", "evalrun/model.safetensors"], {}),
        ("benchmark --out a directory (checked before the attacks)",
         ["benchmark", "run", "--n-images", "20", "--out", "/tmp"], {}),
        ("a Ray address where nothing listens",
         ["reproduce", "--budget", "tiny", "--out", "rayrep", "--executor", "ray",
          "--ray-address", "127.0.0.1:1"], {}),
        ("benchmark of a model whose logits overflow to inf/NaN (weights x 1e30)",
         ["benchmark", "huge-run", "--n-images", "20"], {}),
        py_case("cvgr.benchmark of a model answering (1, 10) for batches > 2",
                "s.l(x.flatten(1))[:1] if len(x) > 2 else s.l(x.flatten(1))"),
        py_case("cvgr.benchmark of a model with integer logits",
                "s.l(x.flatten(1)).round().long()"),
        py_case("cvgr.benchmark of a model whose output ignores its input",
                "s.l.weight[:, :1].T.expand(len(x), 10) * 1.0"),
        py_case("cvgr.benchmark with attacks=5", "s.l(x.flatten(1))",
                ", version='custom', attacks=5"),
        ("NES sigma 1e39 (finite in float64, inf in float32)",
         [*attack, "--attack", "nes", "--sigma", "1e39"], {}),
        ("PGD step size 1e-30", [*attack, "--step-size", "1e-30"], {}),
        ("pgd() on NaN images", [*PY, "import torch, cvgr.attacks as a; from torch import nn; "
                                 "x = torch.full((2, 4), float('nan')); "
                                 "a.pgd(nn.Linear(4, 3), x, torch.tensor([0, 1]), 0.1)"],
         {"prefix": []}),
        ("zoo weights changed after they were measured (sha256 differs)",
         ["benchmark", "zoo:fashion-mnist/real-none", "--n-images", "20"], zoo_env),
        ("the same, through `cvgr eval`", ["eval", "zoo:fashion-mnist/real-none"], zoo_env),
        ("a test set of 0 images: train", [*small, "--out", "r0", "--data-root", "zero"], {}),
        ("a test set of 0 images: eval", ["eval", "run", "--data-root", "zero"], {}),
        ("a test set of 0 images: attack", [*attack, "--data-root", "zero"], {}),
        ("`--report-only` with a truncated eval JSON (read as not finished)",
         ["reproduce", "--out", "trunc-rep", "--report-only", "--quiet"],
         {"ok": "(report written; that evaluation is reported as not measured)"}),
        ("a damaged plan.json", ["reproduce", "--budget", "tiny", "--out", "badplan"], {}),
        ("a plan.json that is JSON but not an object",
         ["reproduce", "--out", "listplan", "--report-only"], {}),
        ("examples file with zero eps sets", ["eval", "run", "--examples", "noeps.npz"], {}),
        ("eps grid whose step float precision cannot resolve (0:1e-11:1e-12 itself now gives "
         "11 distinct values)",
         ["attack", "run", "--eps", "1:1.0000000000000002:1e-17"], {}),
        ("attack of a zoo model without --out", ["attack", "zoo:fashion-mnist/real-none",
                                                 "--eps", "0.1"], {}),
        ("autoattack of a zoo model without --out",
         ["autoattack", "zoo:fashion-mnist/real-none", "--eps", "0.1"], {}),
        ("`cvgr models` with stdout closed", ["models"], {"shell_tail": ">&-"}),
        ("`--check-eps nan`", [*attack, "--check-eps", "nan"], {}),
        ("an empty training file", [*small, "--out", "r5", "--data-root", "zero"], {}),
        ("`square:queries=1e12`", ["benchmark", "run", "--n-images", "20", "--version", "custom",
                                   "--attacks", "square:queries=1e12"], {}),
        ("`--lr -1`", [*small, "--lr", "-1", "--out", "r6"], {}),
        ("a checkpoint whose record names an unknown dataset", ["eval", "nods-run"], {}),
        ("a run that has not finished (record: epochs_completed 0)", ["eval", "unfinished"], {}),
        ("the same in `cvgr attack`", ["attack", "unfinished", "--eps", "0.1"], {}),
        ("the same in `cvgr benchmark`", ["benchmark", "unfinished", "--n-images", "20"], {}),
        ("`--resume` of a stopped run whose state.safetensors is missing",
         [*train, "--epochs", "2", "--train-images", "256", "--test-images", "50", "--lr",
          "1e30", "--out", "div", "--resume"], {"pre": "rm-div-state"}),
    ]


if __name__ == "__main__":
    main()
