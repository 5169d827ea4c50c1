"""Cost of the AutoAttack versions on one small trained net, measured in one run.

Trains a complex MNISTNetV1 with GR (beta 64 + noise 0.05) for one epoch on 3000
Fashion-MNIST images (a net some images of which survive eps 0.1), then times on the first
test images: the ART subset the quick budget used to run, the quick budget's declared custom
version (the authors' APGD-CE 20 steps + Square 100 queries), and the standard AutoAttack.

    .venv/bin/python benchmarks/autoattack_cost.py [--n-quick 100] [--n-standard 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from cvgr.benchmarking import _test_images
from cvgr.checkpoint import load
from cvgr.evaluate import autoattack
from cvgr.experiments.plan import QUICK_AUTOATTACK
from cvgr.train import train
from cvgr.train.config import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-quick", type=int, default=100)
    ap.add_argument("--n-standard", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        train(TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1", complex=True, beta=64,
                          noise=0.05, epochs=1, train_images=3000, test_images=200, lr=0.01),
              d, progress=False, quiet=True)
        model = load(d)
    print(f"CPU {platform.machine()}, {args.threads} thread(s), torch {torch.__version__}")
    print("| version | images | clean | robust | seconds | s per correct image | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    runs = [("ART subset (old quick)", "custom", "art-apgd-ce:steps=20,art-square:queries=100",
             args.n_quick),
            ("custom quick (" + QUICK_AUTOATTACK + ")", "custom", QUICK_AUTOATTACK, args.n_quick),
            ("standard", "standard", None, args.n_standard)]
    base = None
    for label, version, attacks, n in runs:
        x, y, _ = _test_images("fashion-mnist", n, None)
        t = time.perf_counter()
        r = autoattack(model, x, y, 0.1, version=version, attacks=attacks, progress=False)
        dt = time.perf_counter() - t
        assert isinstance(r, dict)
        per = dt / max(len(r["correct_indices"]), 1)
        base = base or per
        print(f"| {label} | {n} | {r['clean_accuracy']:.3f} | {r['robust_accuracy']:.3f} | "
              f"{dt:.1f} | {per:.3f} | {per / base:.2f} |")


if __name__ == "__main__":
    main()
