"""`cvgr attack`: robustness curve of a trained model (JSON + PNG), with gradient-masking checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cvgr.cli._common import add_device, pick_device
from cvgr.errors import UserError
from cvgr.io import write_json

DEFAULT_EPS = {"linf": "0:0.3:0.02", "l2": "0:10:1"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="robustness curve: accuracy against eps under an attack",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or model.safetensors file)")
    p.add_argument("--attack", choices=("fgsm", "pgd", "nes"), default="pgd")
    p.add_argument("--eps", default=None,
                   help="START:STOP:STEP, a comma list or one value (default 0:0.3:0.02 for "
                        "linf, 0:10:1 for l2)")
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--steps", type=int, default=8, help="PGD/NES steps (default 8)")
    p.add_argument("--step-size", type=float, default=None,
                   help="default 1.85*eps/steps")
    p.add_argument("--restarts", type=int, default=1, help="PGD random restarts (default 1)")
    p.add_argument("--no-random-start", action="store_true", help="PGD starts at the image")
    p.add_argument("--queries", type=int, default=100, help="NES probe pairs per step")
    p.add_argument("--sigma", type=float, default=0.001, help="NES probe scale")
    add_data_options(p)
    p.add_argument("--save-examples", metavar="FILE.npz", default=None,
                   help="save the adversarial images of every eps (float32)")
    p.add_argument("--out", metavar="FILE.json", default=None,
                   help="default RUN_DIR/attack-ATTACK-NORM.json; the plot goes beside it")
    p.add_argument("--no-checks", action="store_true", help="skip the gradient-masking checks")
    p.add_argument("--check-eps", type=float, default=None,
                   help="eps of the masking checks (default: the (lower) median nonzero eps)")
    p.add_argument("--check-limit", type=int, default=1000,
                   help="images used by the masking checks (default 1000)")
    p.add_argument("--nes-limit", type=int, default=100,
                   help="images attacked by NES in the masking checks (default 100; 0 skips)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device(p)
    p.set_defaults(func=run)


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dataset", default=None,
                   help="test set to use (default: the dataset in the model's record)")
    p.add_argument("--seed", type=int, default=0, help="seed of random starts and probes")


def load_run(path: str, device: torch.device) -> nn.Module:
    """A run directory or weights file -> model; a UserError when there is no model."""
    from cvgr.checkpoint import load

    return load(path, device)


def test_images(model: nn.Module, dataset: str | None, limit: int | None
                ) -> tuple[Tensor, Tensor, str]:
    """The model's test set on the CPU: (x float [0, 1], y, dataset name)."""
    from cvgr.data import Loader

    record = getattr(model, "record", {}) or {}
    name = dataset or record.get("dataset")
    if not name:
        raise UserError("the model's record names no dataset; pass --dataset NAME")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    loader = Loader(name, "test", 1000, train=False, limit=limit, device="cpu")
    xs, ys = zip(*loader.epoch(0), strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise UserError(f"dataset {name} has images {tuple(x.shape[1:])} but the model takes "
                        f"{tuple(shape)}; pick the dataset the model was trained on")
    return x, y, name


def model_summary(model: nn.Module, path: str) -> dict[str, Any]:
    r = getattr(model, "record", {}) or {}
    return {"path": str(path), **{k: r[k] for k in ("arch", "complex", "dataset", "defense",
                                                     "seed") if k in r}}


def default_out(run: str, stem: str) -> Path:
    base = Path(run)
    return (base if base.is_dir() else base.parent) / f"{stem}.json"


def check_batch(batch_size: int) -> None:
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")


def attack_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options the chosen attack takes, checked (a bad value fails before any work)."""
    from cvgr.attacks import check_options

    kw: dict[str, Any] = {"norm": args.norm}
    if args.attack in ("pgd", "nes"):
        kw.update(steps=args.steps, step_size=args.step_size)
    if args.attack == "pgd":
        kw.update(restarts=args.restarts, random_start=not args.no_random_start)
    if args.attack == "nes":
        kw.update(queries=args.queries, sigma=args.sigma)
    return check_options(**kw)


def run(args: argparse.Namespace) -> int:
    from cvgr import evaluate
    from cvgr.attacks.common import check_count, check_eps
    from cvgr.io import check_output_file

    check_batch(args.batch_size)
    eps_list = evaluate.check_eps_list(evaluate.parse_eps(args.eps or DEFAULT_EPS[args.norm]),
                                       args.norm)
    kw = attack_options(args)
    if not args.no_checks:
        check_count(args.check_limit, "check_limit")
        check_count(args.nes_limit, "nes_limit", minimum=0)
        if args.check_eps is not None:
            check_eps(args.check_eps, args.norm)
    out = Path(args.out) if args.out else default_out(args.run, f"attack-{args.attack}-{args.norm}")
    check_output_file(out, "out")
    check_output_file(out.with_suffix(".png"), "out")
    if args.save_examples:
        check_output_file(args.save_examples, "save_examples")
    dev = pick_device(args.device)
    model = load_run(args.run, dev)
    x, y, dataset = test_images(model, args.dataset, args.limit)
    res = evaluate.robustness_curve(model, x, y, args.attack, eps_list, args.batch_size,
                                    seed=args.seed, progress=not args.quiet,
                                    return_examples=bool(args.save_examples), **kw)
    curve, examples = res if isinstance(res, tuple) else (res, None)
    result: dict[str, Any] = {"model": model_summary(model, args.run), "dataset": dataset,
                              "curve": curve}
    print(f"{args.attack} ({args.norm}) on {len(x)} {dataset} test images:")
    for e, a in zip(curve["eps"], curve["accuracy"], strict=True):
        print(f"  eps {e:<8g} accuracy {a:.4f}")
    if not args.no_checks:
        nonzero = [e for e in eps_list if e > 0]
        ce = args.check_eps if args.check_eps is not None else (
            nonzero[(len(nonzero) - 1) // 2] if nonzero else None)
        if ce is not None:
            n = min(len(x), args.check_limit)
            checks = evaluate.masking_checks(model, x[:n], y[:n], ce, norm=args.norm,
                                             steps=args.steps, batch_size=args.batch_size,
                                             nes_limit=args.nes_limit, seed=args.seed,
                                             progress=not args.quiet)
            result["masking"] = checks
            evaluate.print_checks(checks)
    write_json(out, result)
    png = out.with_suffix(".png")
    label = f"{model_summary(model, args.run).get('arch', 'model')} {args.attack}"
    evaluate.plot_curves({label: curve}, png, title=f"{dataset}: {args.attack} ({args.norm})")
    print(f"wrote {out} and {png}")
    if args.save_examples and examples is not None:
        evaluate.save_examples(args.save_examples, examples, y, curve["eps"], dataset=dataset,
                               attack=args.attack, norm=args.norm,
                               source=model_summary(model, args.run), options=curve["options"])
        print(f"wrote {args.save_examples} ({len(examples)} eps x {len(y)} images)")
    return 0
