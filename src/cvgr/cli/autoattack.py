"""`cvgr autoattack`: independent evaluation with ART's APGD-CE, APGD-DLR and Square attacks.

Needs the optional extra: `pip install cvgr[attack]`.
"""

from __future__ import annotations

import argparse

from cvgr.cli._common import add_device, pick_device
from cvgr.cli.attack import (
    add_data_options,
    check_batch,
    default_out,
    load_run,
    model_summary,
    test_images,
)
from cvgr.errors import UserError
from cvgr.io import check_output_file, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("autoattack", help="AutoAttack-grade evaluation with ART (optional extra)",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or model.safetensors file)")
    p.add_argument("--eps", type=float, required=True, help="attack radius")
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--parts", default="apgd-ce,apgd-dlr,square",
                   help="comma list of apgd-ce, apgd-dlr, square (default all)")
    p.add_argument("--apgd-steps", type=int, default=100)
    p.add_argument("--square-queries", type=int, default=1000)
    add_data_options(p)
    p.add_argument("--out", metavar="FILE.json", default=None,
                   help="default RUN_DIR/autoattack-NORM-EPS.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr import evaluate
    from cvgr.attacks import check_eps
    from cvgr.evaluate.art_bridge import require_art

    require_art()
    check_batch(args.batch_size)
    check_eps(args.eps, args.norm)
    if args.apgd_steps < 1 or args.square_queries < 1:
        raise UserError("--apgd-steps and --square-queries must be >= 1")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    out = args.out or default_out(args.run, f"autoattack-{args.norm}-{args.eps:g}")
    check_output_file(out, "out")
    model = load_run(args.run, pick_device(args.device))
    x, y, dataset = test_images(model, args.dataset, args.limit)
    res = evaluate.autoattack(model, x, y, args.eps, norm=args.norm, parts=parts,
                              apgd_steps=args.apgd_steps, square_queries=args.square_queries,
                              batch_size=args.batch_size, seed=args.seed,
                              progress=not args.quiet)
    res = {"model": model_summary(model, args.run), "dataset": dataset, **res}
    print(f"autoattack ({res['library']}) at eps={args.eps:g} ({args.norm}) on {len(x)} "
          f"{dataset} images: clean {res['clean_accuracy']:.4f}")
    for r in res["attacks"]:
        print(f"  after {r['attack']:<9} robust accuracy {r['robust_accuracy']:.4f}")
    print(f"worst case per image: robust accuracy {res['robust_accuracy']:.4f}")
    write_json(out, res)
    print(f"wrote {out}")
    return 0
