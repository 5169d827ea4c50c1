"""`cvgr transfer`: craft PGD examples on each model, evaluate all: a source-by-target matrix."""

from __future__ import annotations

import argparse
from typing import Any

from cvgr.cli._common import add_device, add_output, emit, note
from cvgr.cli.attack import add_data_options, inputs
from cvgr.names import Attack


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="transfer-attack accuracy matrix among trained models",
                       description=__doc__)
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="two or more run directories")
    p.add_argument("--eps", type=float, required=True, help="attack radius")
    p.add_argument("--steps", type=int, default=8, help="PGD steps (default 8)")
    p.add_argument("--attack", choices=[str(Attack.PGD), str(Attack.FGSM)], default=str(Attack.PGD))
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--names", default=None, help="comma list of labels (default: run names)")
    add_data_options(p)
    p.add_argument("--out", metavar="FILE.json", default=None,
                   help="matrix JSON (default: in the first run's directory, "
                        "transfer-ATTACK-NORM-EPS.json); the heatmap goes beside it")
    add_output(p)
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr.evaluate.tasks import transfer_task

    names = None if args.names is None else args.names.split(",")
    mat = transfer_task(args.runs, inputs(args), eps=args.eps, steps=args.steps,
                        attack=args.attack, norm=args.norm, names=names, out=args.out,
                        show=lambda r: emit(args, r, lines(r)))
    for f in mat["outputs"].values():
        note(args, f"wrote {f}")
    return 0


def lines(mat: dict[str, Any]) -> list[str]:
    names = mat["sources"]
    width = max(8, *(len(n) for n in names))
    out = [f"{mat['attack']}-{mat['steps']} transfer at eps={mat['eps']:g} on {mat['n_images']} "
           f"{mat['dataset']} images (rows: source, columns: target; diagonal white-box)",
           " " * width + "".join(f" {n:>{width}}" for n in names)]
    out += [f"{n:<{width}}" + "".join(f" {a:>{width}.4f}" for a in row)
            for n, row in zip(names, mat["accuracy"], strict=True)]
    if not mat["masking"]["flagged"]:
        return [*out, "[ ok ] no transfer attack beats white-box on its target"]
    return out + [f"[FLAG] transfer {h['source']} -> {h['target']} "
                  f"({h['transfer_accuracy']:.3f}) beats white-box on {h['target']} "
                  f"({h['white_box_accuracy']:.3f}): possible gradient masking"
                  for h in mat["masking"]["stronger"]]
