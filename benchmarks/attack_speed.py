"""Attack throughput (images/second): FGSM, PGD-8 and NES on real MNISTNetV0 and complex
MNISTNetV1, and our PGD-8 against ART's ProjectedGradientDescent on the same model, same
images, same settings, timed alternately in one run and reported as a ratio (ours / ART).

    .venv/bin/python benchmarks/attack_speed.py [--n-images 512] [--nes-n 32] [--device cpu]

Labels are the model's own predictions, so every image starts correctly classified and no
attack gets a head start; NES uses a small eps so that it spends its whole query budget.
Timings are the best of --repeats runs after one warm-up.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from cvgr.attacks import fgsm, nes, pgd
from cvgr.models import create_model


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(name: str, model: torch.nn.Module, args: argparse.Namespace,
          dev: torch.device) -> list[tuple[str, str, float]]:
    from cvgr.evaluate import art_pgd

    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.n_images, 1, 28, 28, generator=g).to(dev)
    with torch.no_grad():
        y = model(x).argmax(1)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    bs, eps, steps = args.batch_size, 0.1, 8
    step = 1.85 * eps / steps

    def batched(attack: Callable[..., torch.Tensor], xx: torch.Tensor, yy: torch.Tensor,
                **kw: object) -> None:
        for i in range(0, len(xx), bs):
            attack(model, xx[i:i + bs], yy[i:i + bs], **kw)

    rows = []
    t = best_time(lambda: batched(fgsm, x, y, eps=eps), args.repeats, sync)
    rows.append((name, "FGSM", args.n_images / t))
    ours = lambda: batched(pgd, x, y, eps=eps, steps=steps, random_start=False)  # noqa: E731
    theirs = lambda: art_pgd(model, x, y, eps, steps, step, batch_size=bs)  # noqa: E731
    t_ours, t_art = [], []
    for _ in range(args.repeats):  # alternate, so load changes hit both alike
        t_ours.append(best_time(ours, 1, sync))
        t_art.append(best_time(theirs, 1, sync))
    rows.append((name, "PGD-8 (ours)", args.n_images / min(t_ours)))
    rows.append((name, "PGD-8 (ART)", args.n_images / min(t_art)))
    xn, yn = x[:args.nes_n], y[:args.nes_n]
    t = best_time(lambda: batched(nes, xn, yn, eps=0.005, steps=steps, queries=100),
                  max(1, args.repeats // 2), sync)
    rows.append((name, "NES-8 (100 pairs)", args.nes_n / t))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-images", type=int, default=512, help="images for FGSM and PGD")
    p.add_argument("--nes-n", type=int, default=32, help="images for NES")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    import art

    print(f"torch {torch.__version__}, ART {art.__version__}, device {dev}, "
          f"{torch.get_num_threads()} threads, {args.n_images} images (NES {args.nes_n}), "
          f"batch {args.batch_size}")
    rows: list[tuple[str, str, float]] = []
    for name, model in (("real MNISTNetV0", create_model("MNISTNetV0")),
                        ("complex MNISTNetV1", create_model("MNISTNetV1", complex=True))):
        torch.manual_seed(0)
        rows += bench(name, model.to(dev).eval(), args, dev)
    print(f"{'model':<20} {'attack':<20} {'images/s':>10}")
    for m, a, v in rows:
        print(f"{m:<20} {a:<20} {v:>10.1f}")
    for m in dict.fromkeys(r[0] for r in rows):
        d = {a: v for mm, a, v in rows if mm == m}
        print(f"{m}: PGD-8 ours / ART = {d['PGD-8 (ours)'] / d['PGD-8 (ART)']:.2f}")


if __name__ == "__main__":
    main()
