"""`cvgr attack`: robustness curve of a trained model (JSON + PNG), with gradient-masking checks."""

from __future__ import annotations

import argparse
from typing import Any

from cvgr.cli._common import (
    add_allow_unfinished,
    add_data_root,
    add_device,
    add_output,
    emit,
    note,
)
from cvgr.devices import resolve_device
from cvgr.names import Attack


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="robustness curve: accuracy against eps under an attack",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or model.safetensors file)")
    p.add_argument("--attack", choices=[str(a) for a in Attack], default=str(Attack.PGD))
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
    p.add_argument("--check-images", type=int, default=1000,
                   help="images used by the masking checks (default 1000)")
    p.add_argument("--nes-images", type=int, default=100,
                   help="images attacked by NES in the masking checks (default 100; 0 skips)")
    add_output(p)
    add_device(p)
    p.set_defaults(func=run)


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Which test images: shared by attack, eval, transfer and autoattack."""
    p.add_argument("--n-images", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dataset", default=None,
                   help="test set to use (default: the dataset in the model's record)")
    add_data_root(p)
    p.add_argument("--seed", type=int, default=0, help="seed of random starts and probes")
    add_allow_unfinished(p)


def inputs(args: argparse.Namespace) -> Any:
    """The core's `Inputs` from the shared options."""
    from cvgr.evaluate.tasks import Inputs
    from cvgr.options import RunOptions

    options = RunOptions.for_terminal(getattr(args, "quiet", False),
                                      device=str(resolve_device(args.device)),
                                      data_root=args.data_root)
    return Inputs(dataset=args.dataset, n_images=args.n_images, batch_size=args.batch_size,
                  seed=getattr(args, "seed", 0), allow_unfinished=args.allow_unfinished,
                  options=options)


def run(args: argparse.Namespace) -> int:
    from cvgr.evaluate.tasks import attack_task

    res = attack_task(args.run, inputs(args), attack=args.attack, eps=args.eps, norm=args.norm,
                      steps=args.steps, step_size=args.step_size, restarts=args.restarts,
                      random_start=not args.no_random_start, queries=args.queries,
                      sigma=args.sigma, checks=not args.no_checks, check_eps=args.check_eps,
                      check_images=args.check_images, nes_images=args.nes_images, out=args.out,
                      save_examples=args.save_examples,
                      show=lambda r: emit(args, r, lines(r)))
    for f in res["outputs"].values():
        note(args, f"wrote {f}")
    return 0


def lines(res: dict[str, Any]) -> list[str]:
    from cvgr.evaluate.masking import format_checks

    curve = res["curve"]
    out = [f"{curve['attack']} ({curve['options'].get('norm', 'linf')}) on {curve['n_images']} "
           f"{res['dataset']} test images:"]
    out += [f"  eps {e:<8g} accuracy {a:.4f}"
            for e, a in zip(curve["eps"], curve["accuracy"], strict=True)]
    if "masking" in res:
        out += format_checks(res["masking"])
    return out
