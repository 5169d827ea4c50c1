"""`cvgr transfer`: craft PGD examples on each model, evaluate all: a source-by-target matrix."""

from __future__ import annotations

import argparse
from pathlib import Path

from cvgr.cli._common import add_device, pick_device
from cvgr.cli.attack import add_data_options, check_batch, load_run, model_summary, test_images
from cvgr.errors import UserError
from cvgr.io import check_output_file, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="transfer-attack accuracy matrix among trained models",
                       description=__doc__)
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="two or more run directories")
    p.add_argument("--eps", type=float, required=True, help="attack radius")
    p.add_argument("--steps", type=int, default=8, help="PGD steps (default 8)")
    p.add_argument("--attack", choices=("pgd", "fgsm"), default="pgd")
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--names", default=None, help="comma list of labels (default: run names)")
    add_data_options(p)
    p.add_argument("--out", metavar="FILE.json", default="transfer.json",
                   help="matrix JSON (default transfer.json); the heatmap goes beside it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device(p)
    p.set_defaults(func=run)


def labels(runs: list[str], names: str | None) -> list[str]:
    if names:
        out = [n.strip() for n in names.split(",")]
        if len(out) != len(runs) or len(set(out)) != len(out):
            raise UserError(f"--names needs {len(runs)} distinct labels, one per run")
        return out
    out = []
    for r in runs:
        p = Path(r)
        base = (p if p.is_dir() else p.parent).name or str(p)
        label, k = base, 2
        while label in out:
            label, k = f"{base}#{k}", k + 1
        out.append(label)
    return out


def run(args: argparse.Namespace) -> int:
    from cvgr import evaluate
    from cvgr.attacks import check_eps

    check_batch(args.batch_size)
    check_eps(args.eps, args.norm)
    if args.steps < 1:
        raise UserError("--steps must be >= 1")
    names = labels(args.runs, args.names)
    out = check_output_file(args.out, "out")
    check_output_file(out.with_suffix(".png"), "out")
    dev = pick_device(args.device)
    models = {n: load_run(r, dev) for n, r in zip(names, args.runs, strict=True)}
    datasets = {n: (getattr(m, "record", {}) or {}).get("dataset") for n, m in models.items()}
    if args.dataset is None and len(set(datasets.values())) > 1:
        raise UserError(f"models were trained on different datasets {datasets}; transfer needs "
                        "one dataset (or pass --dataset)")
    x, y, dataset = test_images(next(iter(models.values())), args.dataset, args.limit)
    for n, m in models.items():
        shape = getattr(m, "input_shape", None)
        if shape is not None and tuple(shape) != tuple(x.shape[1:]):
            raise UserError(f"model {n} takes {tuple(shape)} images, not {tuple(x.shape[1:])}")
    mat = evaluate.transfer_matrix(models, x, y, args.eps, args.steps, attack=args.attack,
                                   norm=args.norm, batch_size=args.batch_size, seed=args.seed,
                                   progress=not args.quiet)
    mat["dataset"] = dataset
    mat["models"] = {n: model_summary(m, r) for (n, m), r in
                     zip(models.items(), args.runs, strict=True)}
    width = max(8, *(len(n) for n in names))
    print(f"{args.attack}-{args.steps} transfer at eps={args.eps:g} on {len(x)} {dataset} "
          "images (rows: source, columns: target; diagonal white-box)")
    print(" " * width + "".join(f" {n:>{width}}" for n in names))
    for n, row in zip(names, mat["accuracy"], strict=True):
        print(f"{n:<{width}}" + "".join(f" {a:>{width}.4f}" for a in row))
    if mat["masking"]["flagged"]:
        for h in mat["masking"]["stronger"]:
            print(f"[FLAG] transfer {h['source']} -> {h['target']} ({h['transfer_accuracy']:.3f}) "
                  f"beats white-box on {h['target']} ({h['white_box_accuracy']:.3f}): "
                  "possible gradient masking")
    else:
        print("[ ok ] no transfer attack beats white-box on its target")
    write_json(out, mat)
    png = out.with_suffix(".png")
    evaluate.plot_matrix(mat, png)
    print(f"wrote {out} and {png}")
    return 0
