"""`cvgr autoattack`: AutoAttack on a trained model, by version.

  standard  the authors' AutoAttack (APGD-CE, APGD-T, FAB-T, Square 5000 queries); needs
            `pip install cvgr[autoattack]`
  art       ART's APGD-CE, APGD-DLR and Square (1000 queries), an independent second opinion;
            needs `pip install cvgr[attack]`
  custom    --attacks 'apgd-ce:steps=20,square:queries=100' (names: apgd-ce, apgd-dlr, apgd-t,
            fab, fab-t, square, art-apgd-ce, art-apgd-dlr, art-square)
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
    p = sub.add_parser("autoattack", help="AutoAttack: the authors' standard version, ART's, "
                       "or a custom list", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or model.safetensors file)")
    p.add_argument("--eps", type=float, required=True, help="attack radius")
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--version", choices=("standard", "art", "custom"), default="standard",
                   help="which attacks (default standard)")
    p.add_argument("--attacks", default=None, metavar="LIST",
                   help="with --version custom: NAME[:KEY=VALUE...] comma list, e.g. "
                        "apgd-ce:steps=20,square:queries=100")
    add_data_options(p)
    p.set_defaults(batch_size=250)
    p.add_argument("--out", metavar="FILE.json", default=None,
                   help="default RUN_DIR/autoattack-VERSION-NORM-EPS.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr import evaluate
    from cvgr.attacks import check_eps
    from cvgr.evaluate.autoattack import version_attacks

    check_batch(args.batch_size)
    check_eps(args.eps, args.norm)
    if args.version != "custom" and args.attacks is not None:
        raise UserError("--attacks goes with --version custom")
    version_attacks(args.version, args.attacks)
    out = args.out or default_out(args.run, f"autoattack-{args.version}-{args.norm}-{args.eps:g}")
    check_output_file(out, "out")
    model = load_run(args.run, pick_device(args.device))
    x, y, dataset = test_images(model, args.dataset, args.limit)
    res = evaluate.autoattack(model, x, y, args.eps, norm=args.norm, version=args.version,
                              attacks=args.attacks, batch_size=args.batch_size, seed=args.seed,
                              progress=not args.quiet)
    assert isinstance(res, dict)
    res = {"model": model_summary(model, args.run), "dataset": dataset, **res}
    libs = ", ".join(f"{k} {v}" for k, v in res["libraries"].items()
                     if k in ("pyautoattack", "adversarial-robustness-toolbox"))
    print(f"AutoAttack {args.version} ({libs}) at eps={args.eps:g} ({args.norm}) on {len(x)} "
          f"{dataset} images: clean {res['clean_accuracy']:.4f}")
    for r in res["attacks"]:
        print(f"  after {r['attack']:<12} robust accuracy {r['robust_accuracy']:.4f} "
              f"({r['attacked']} attacked, {r['seconds']:.1f} s)")
    print(f"worst case per image: robust accuracy {res['robust_accuracy']:.4f}")
    for f in res["flags"]:
        print(f"  AutoAttack check: {f}")
    write_json(out, res)
    print(f"wrote {out}")
    return 0
