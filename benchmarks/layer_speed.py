"""Forward, backward and double backward of real MNISTNetV0 and complex MNISTNetV1.

Prints each as a ratio to real MNISTNetV0 forward+backward, all measured in this one run:
    python benchmarks/layer_speed.py [--batch 64] [--repeats 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cvgr.devices import default_device
from cvgr.models import count_macs, create_model


def timeit(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median seconds of `fn` after warm-up (synchronising CUDA so the numbers are real)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def workloads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable]:
    params = list(model.parameters())

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        loss = F.cross_entropy(model(x), y)
        torch.autograd.grad(loss, params)

    def double_backward() -> None:
        xr = x.clone().requires_grad_()
        loss = F.cross_entropy(model(xr), y)
        (gx,) = torch.autograd.grad(loss, xr, create_graph=True)
        total = loss + gx.abs().sum(dim=(1, 2, 3)).pow(2).mean()
        torch.autograd.grad(total, params)

    return {"forward": forward, "forward+backward": forward_backward,
            "forward+double backward": double_backward}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--device", default=str(default_device()))
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    models = {"real MNISTNetV0": create_model("MNISTNetV0").to(device),
              "complex MNISTNetV1": create_model("MNISTNetV1", complex=True).to(device)}
    results = {}
    for name, model in models.items():
        for what, fn in workloads(model, x, y).items():
            results[(name, what)] = timeit(fn, args.repeats, device)
    base = results[("real MNISTNetV0", "forward+backward")]
    print(f"device {device}, batch {args.batch}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    for name, model in models.items():
        print(f"{name}: {count_macs(model):,} MACs/image")
    print(f"{'model':<20} {'workload':<24} {'ms':>8} {'ratio':>7}")
    for (name, what), t in results.items():
        print(f"{name:<20} {what:<24} {t * 1e3:8.2f} {t / base:7.2f}")


if __name__ == "__main__":
    main()
