"""`cvgr eval`: clean test accuracy of a model, or its accuracy on saved adversarial examples."""

from __future__ import annotations

import argparse
from typing import Any

from cvgr.cli._common import add_device, pick_device
from cvgr.cli.attack import check_batch, load_run, model_summary, test_images
from cvgr.errors import UserError
from cvgr.io import check_output_file, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="clean accuracy, or accuracy on saved adversarial examples",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or model.safetensors file)")
    p.add_argument("--examples", metavar="FILE.npz", default=None,
                   help="examples written by `cvgr attack --save-examples`")
    p.add_argument("--limit", type=int, default=None, help="first N images (default all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dataset", default=None,
                   help="test set to use (default: the dataset in the model's record)")
    p.add_argument("--out", metavar="FILE.json", default=None, help="also write the result")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr import evaluate

    check_batch(args.batch_size)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.out:
        check_output_file(args.out, "out")
    model = load_run(args.run, pick_device(args.device))
    result: dict[str, Any] = {"model": model_summary(model, args.run)}
    if args.examples is None:
        x, y, dataset = test_images(model, args.dataset, args.limit)
        acc = evaluate.accuracy(model, x, y, args.batch_size)
        result.update(dataset=dataset, n=len(x), clean_accuracy=acc)
        print(f"clean accuracy {acc:.4f} on {len(x)} {dataset} test images")
    else:
        record = getattr(model, "record", {}) or {}
        ex = evaluate.load_examples(args.examples, shape=getattr(model, "input_shape", None),
                                    dataset=args.dataset or record.get("dataset"))
        n = len(ex["y"]) if args.limit is None else min(args.limit, len(ex["y"]))
        y = ex["y"][:n]
        accs = [evaluate.accuracy(model, xe[:n], y, args.batch_size) for xe in ex["x"]]
        src = ex["source"].get("path", "?")
        result.update(examples=str(args.examples), dataset=ex["dataset"], attack=ex["attack"],
                      norm=ex["norm"], source=ex["source"], n=n, eps=ex["eps"], accuracy=accs)
        print(f"accuracy on {n} {ex['attack']} ({ex['norm']}) examples crafted on {src}:")
        for e, a in zip(ex["eps"], accs, strict=True):
            print(f"  eps {e:<8g} accuracy {a:.4f}")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0
