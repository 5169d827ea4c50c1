"""What makes small-net training faster on a GPU: eager against cudnn autotuning,
torch.compile, a CUDA graph of the whole step, and several jobs sharing one GPU.

    python benchmarks/gpu_speed.py --device cuda          # about 2-4 minutes on one GPU
    python benchmarks/gpu_speed.py --device cpu --steps 5 # a smoke test of the script

One training step (batch 64, Fashion-MNIST-shaped random data, SGD) of real MNISTNetV0 with
no defense and complex MNISTNetV1 with GR (beta 64, exact double backprop), timed after
warm-up, with the device synchronised. Each variant runs in its own try: one that fails
(torch.compile does not support the double backward of GR, for instance) prints why and the
others go on. "shared GPU xN" starts N processes stepping at once and reports their summed
steps/s against one process. Prints a Markdown table for docs/benchmarks.md with the GPU's
name; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cvgr.defenses import gradient_regularized_loss
from cvgr.devices import resolve_device
from cvgr.models import create_model

CASES = {"real none": ("MNISTNetV0", False, 0.0), "complex GR": ("MNISTNetV1", True, 64.0)}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _setup(case: str, dev: torch.device, compile_: bool = False):
    arch, cplx, beta = CASES[case]
    torch.manual_seed(0)
    model = create_model(arch, complex=cplx).to(dev).train()
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.875)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g, device=dev)
    y = torch.randint(0, 10, (64,), generator=g, device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        if beta > 0:
            loss = gradient_regularized_loss(net, x, y, beta)[0]
        else:
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return step, x, y


def _time(step: Callable[[], None], dev: torch.device, steps: int, warmup: int) -> float:
    """Median ms per step over 3 blocks of `steps`."""
    for _ in range(warmup):
        step()
    _sync(dev)
    blocks = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(dev)
        blocks.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(blocks)


def eager(case, dev, a):
    return _time(_setup(case, dev)[0], dev, a.steps, a.warmup)


def cudnn_benchmark(case, dev, a):
    if dev.type != "cuda":
        raise RuntimeError("cuDNN only")
    torch.backends.cudnn.benchmark = True
    try:
        return _time(_setup(case, dev)[0], dev, a.steps, a.warmup)
    finally:
        torch.backends.cudnn.benchmark = False


def compiled(case, dev, a):
    return _time(_setup(case, dev, compile_=True)[0], dev, a.steps, a.warmup + 3)


def cuda_graph(case, dev, a):
    """The whole step (forward, backward(s), SGD update) captured once and replayed."""
    if dev.type != "cuda":
        raise RuntimeError("CUDA only")
    step, _, _ = _setup(case, dev)
    s = torch.cuda.Stream(dev)
    s.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(s):
        for _ in range(3):  # warm up on a side stream, as capture requires
            step()
    torch.cuda.current_stream(dev).wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return _time(graph.replay, dev, a.steps, a.warmup)


def _worker(case: str, dev: str, steps: int, warmup: int, start, q) -> None:
    d = torch.device(dev)
    step = _setup(case, d)[0]
    for _ in range(warmup):
        step()
    _sync(d)
    start.wait()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(d)
    q.put(steps / (time.perf_counter() - t0))


def shared(n: int) -> Callable:
    def run(case, dev, a):
        ctx = mp.get_context("spawn")
        start, q = ctx.Barrier(n + 1), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(case, str(dev), a.steps * 3, a.warmup,
                                                   start, q)) for _ in range(n)]
        for p in procs:
            p.start()
        start.wait()
        rates = [q.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        return 1000 / sum(rates)  # ms per step of the whole GPU

    return run


VARIANTS = {"eager": eager, "eager + cudnn.benchmark": cudnn_benchmark,
            "torch.compile": compiled, "CUDA graph (whole step)": cuda_graph,
            "shared GPU x2 (eager)": shared(2), "shared GPU x4 (eager)": shared(4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=100, help="steps per timed block")
    ap.add_argument("--warmup", type=int, default=10)
    a = ap.parse_args()
    dev = resolve_device(a.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({dev})"
    print(f"{name}, torch {torch.__version__}, batch 64, {time.strftime('%Y-%m-%d')}\n")
    print("| model / defense | variant | ms per step | steps/s | vs eager | s/epoch (938) |")
    print("|---|---|---:|---:|---:|---:|")
    for case in CASES:
        base = None
        for vname, fn in VARIANTS.items():
            try:
                ms = fn(case, dev, a)
            except Exception as e:  # noqa: BLE001 - report and go on
                why = f"{type(e).__name__}: {e}".splitlines()[0][:90]
                print(f"| {case} | {vname} | failed: {why} | | | |", flush=True)
                continue
            base = base or (ms if vname == "eager" else None)
            ratio = f"{base / ms:.2f}x" if base else "-"
            print(f"| {case} | {vname} | {ms:.2f} | {1000 / ms:.0f} | {ratio} | "
                  f"{ms * 938 / 1000:.1f} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
