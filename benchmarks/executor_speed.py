"""The quick reproduction through the local executor (--jobs 2) and through Ray (a local
instance with 2 CPUs, one CPU per job): wall time of each, and whether both give the same
weights and numbers.

    python benchmarks/executor_speed.py [--dataset fashion-mnist] [--budget quick] [--keep DIR]

Both runs use one PyTorch thread per job, so their weights must agree bitwise. Run it on a
quiet machine: each run takes minutes, and other load moves the times (the load average is
printed before and after each run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from cvgr.io import read_json

RUNS = {
    "local --jobs 2": ["--jobs", "2"],
    "ray, 2 CPUs": ["--executor", "ray", "--ray-cpus", "2", "--cpus-per-job", "1"],
}


def _cvgr() -> list[str]:
    return [sys.executable, "-c", "import sys; from cvgr.cli import main; sys.exit(main())"]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _strip_times(obj):
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items() if "second" not in k and "time" not in k}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    return obj


def _same(a: Path, b: Path) -> tuple[int, list[str]]:
    """(number of runs compared, the differences) between two reproduction directories."""
    diffs, n = [], 0
    for ma in sorted(a.glob("runs/*/model.safetensors")):
        mb = b / ma.relative_to(a)
        ta, tb = load_file(str(ma)), load_file(str(mb))
        n += 1
        if ta.keys() != tb.keys() or not all(torch.equal(ta[k], tb[k]) for k in ta):
            diffs.append(f"weights differ: {ma.parent.name}")
    for ea in sorted(a.glob("evals/*.json")):
        ra, rb = read_json(ea)["result"], read_json(b / ea.relative_to(a))["result"]
        if _strip_times(ra) != _strip_times(rb):
            diffs.append(f"evaluation differs: {ea.stem}")
    return n, diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--budget", default="quick")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="write the two reproductions here (default: a temporary directory)")
    args = ap.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="cvgr-executors-"))
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
    walls = {}
    for name, flags in RUNS.items():
        out = base / name.split()[0].strip(",")
        shutil.rmtree(out, ignore_errors=True)
        cmd = [*_cvgr(), "reproduce", "--dataset", args.dataset, "--budget", args.budget,
               "--out", str(out), "--device", "cpu", *flags]
        print(f"\n{name}: cvgr {' '.join(cmd[3:])}\n  load before: {_load()}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
        walls[name] = time.perf_counter() - t0
        print(f"  exit {rc}, wall {walls[name]:.1f} s, load after: {_load()}", flush=True)
    a, b = (base / n.split()[0].strip(",") for n in RUNS)
    n, diffs = _same(a, b)
    (la, wa), (lb, wb) = walls.items()
    print(f"\n| executor | wall s |\n|---|---:|\n| {la} | {wa:.1f} |\n| {lb} | {wb:.1f} |")
    print(f"ratio ray / local: {wb / wa:.2f}")
    print(f"{n} runs compared: " + ("weights bitwise equal, evaluations equal" if not diffs
                                    else "; ".join(diffs)))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
