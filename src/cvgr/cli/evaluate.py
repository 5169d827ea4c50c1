"""`cvgr eval`: clean test accuracy of a model, or its accuracy on saved adversarial examples."""

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
from cvgr.cli.attack import inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="clean accuracy, or accuracy on saved adversarial examples",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or model.safetensors file)")
    p.add_argument("--examples", metavar="FILE.npz", default=None,
                   help="examples written by `cvgr attack --save-examples`")
    p.add_argument("--n-images", type=int, default=None, help="first N images (default all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dataset", default=None,
                   help="test set to use (default: the dataset in the model's record)")
    add_data_root(p)
    add_allow_unfinished(p)
    p.add_argument("--out", metavar="FILE.json", default=None, help="also write the result")
    add_output(p)
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr.evaluate.tasks import eval_task

    eval_task(args.run, inputs(args), examples=args.examples, out=args.out,
              show=lambda r: emit(args, r, lines(r)))
    if args.out:
        note(args, f"wrote {args.out}")
    return 0


def lines(res: dict[str, Any]) -> list[str]:
    if "clean_accuracy" in res:
        return [f"clean accuracy {res['clean_accuracy']:.4f} on {res['n_images']} {res['dataset']} "
                "test images"]
    out = [f"accuracy on {res['n_images']} {res['attack']} ({res['norm']}) examples crafted on "
           f"{res['source'].get('path', '?')}:"]
    return out + [f"  eps {e:<8g} accuracy {a:.4f}"
                  for e, a in zip(res["eps"], res["accuracy"], strict=True)]
