"""Training-step cost of the gradient penalty modes, as ratios to a plain real CE step.

One "step" is what the trainer does per batch minus the optimiser: forward, loss (CE, or
CE + beta * penalty through :func:`cvgr.defenses.gradient_regularized_loss`) and backward to
the parameters. Real MNISTNetV0 and complex MNISTNetV1 on a batch of 1x28x28 images; every
figure is the median of several timed runs after warm-up, and every ratio is to real
MNISTNetV0's CE step measured in the same run.

    .venv/bin/python benchmarks/penalty_speed.py [--batch 64] [--repeats 30] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cvgr.defenses import gradient_regularized_loss
from cvgr.devices import default_device
from cvgr.models import create_model


def ce_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    F.cross_entropy(model(x), y).backward()


def gr_step(mode: str) -> Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], None]:
    def step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        gradient_regularized_loss(model, x, y, beta=512.0, q=1, mode=mode).total.backward()

    return step


def interleaved_times(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 3
                      ) -> dict[str, list[float]]:
    """Run every case once per round, round after round, so that load from other processes on
    the machine hits all cases alike instead of biasing whichever ran during a busy spell."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(repeats):
        for k, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--profile", action="store_true",
                    help="also print a torch.profiler table of the complex exact step")
    ap.add_argument("--device", default=str(default_device()))
    args = ap.parse_args()

    torch.manual_seed(0)
    dev = torch.device(args.device)
    x = torch.rand(args.batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    models = {"real MNISTNetV0": create_model("MNISTNetV0").to(dev),
              "complex MNISTNetV1": create_model("MNISTNetV1", complex=True).to(dev)}
    steps = {"CE": ce_step, "GR exact": gr_step("exact"), "GR reference": gr_step("reference"),
             "GR fd": gr_step("fd")}

    def case(model: torch.nn.Module, step: Callable) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            step(model, x, y)

        return run

    cases = {(m, s): case(model, step) for m, model in models.items()
             for s, step in steps.items()}
    times = interleaved_times(cases, args.repeats)  # type: ignore[arg-type]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.repeats} interleaved rounds")
    base_med = statistics.median(times[("real MNISTNetV0", "CE")])
    base_min = min(times[("real MNISTNetV0", "CE")])
    print(f"{'model':<20} {'step':<14} {'median ms':>10} {'ratio':>6} {'min ms':>8} {'ratio':>6}")
    for (mname, sname), ts in times.items():
        med, low = statistics.median(ts), min(ts)
        print(f"{mname:<20} {sname:<14} {1e3 * med:10.2f} {med / base_med:6.2f} "
              f"{1e3 * low:8.2f} {low / base_min:6.2f}")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        model = models["complex MNISTNetV1"]
        step = gr_step("exact")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                model.zero_grad(set_to_none=True)
                step(model, x, y)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
