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
from typing import Any

from cvgr.cli._common import add_device, add_output, emit, note
from cvgr.cli.attack import add_data_options, inputs


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
    add_output(p)
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr.evaluate.tasks import autoattack_task

    res = autoattack_task(args.run, inputs(args), eps=args.eps, norm=args.norm,
                          version=args.version, attacks=args.attacks, out=args.out,
                          show=lambda r: emit(args, r, lines(r)))
    note(args, f"wrote {res['outputs']['json']}")
    return 0


def lines(res: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in res["libraries"].items()
                     if k in ("pyautoattack", "adversarial-robustness-toolbox"))
    return [f"AutoAttack {res['version']} ({libs}) at eps={res['eps']:g} ({res['norm']}) on "
            f"{res['n_images']} {res['dataset']} images: clean {res['clean_accuracy']:.4f}",
            *(f"  after {r['attack']:<12} robust accuracy {r['robust_accuracy']:.4f} "
              f"({r['attacked']} attacked, {r['seconds']:.1f} s)" for r in res["attacks"]),
            f"worst case per image: robust accuracy {res['robust_accuracy']:.4f}",
            *(f"  AutoAttack check: {f}" for f in res["flags"])]
