"""`cvgr benchmark`: clean and AutoAttack robust accuracy of one model in one call.

MODEL is a run directory, a .safetensors file or a zoo entry (zoo:fashion-mnist/complex-gr).
The dataset defaults to the one in the model's record; eps to the dataset's claim radius.
"""

from __future__ import annotations

import argparse

from cvgr.cli._common import (
    add_allow_unfinished,
    add_data_root,
    add_device,
    add_output,
    emit,
    note,
)
from cvgr.devices import resolve_device
from cvgr.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="one-call robustness benchmark (clean + AutoAttack)",
                       description=__doc__)
    p.add_argument("model", metavar="MODEL", help="RUN_DIR, FILE.safetensors or zoo:NAME")
    p.add_argument("--dataset", default=None, help="default: the model's dataset")
    p.add_argument("--threat-model", choices=("Linf", "L2"), default="Linf")
    p.add_argument("--eps", type=float, default=None,
                   help="default: the dataset's claim eps (Linf) - required for L2")
    p.add_argument("--n-images", type=int, default=1000, help="first N test images (default 1000)")
    p.add_argument("--version", choices=("standard", "art", "custom"), default="standard")
    p.add_argument("--attacks", default=None, metavar="LIST",
                   help="with --version custom, e.g. apgd-ce:steps=20,square:queries=100")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE.json", default=None, help="also save the result here")
    add_data_root(p)
    add_allow_unfinished(p)
    add_output(p)
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cvgr
    from cvgr.benchmarking import claim_eps
    from cvgr.evaluate.autoattack import version_attacks
    from cvgr.evaluate.runs import record_dataset, run_inputs
    from cvgr.io import check_output_file

    if args.n_images < 1:
        raise UserError(f"--n-images must be >= 1, got {args.n_images}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    version_attacks(args.version, args.attacks)
    if args.out:  # before the work: a bad --out is refused now, not after the attacks
        check_output_file(args.out, "out", protect=run_inputs(args.model))
    dev = resolve_device(args.device)
    model = cvgr.load(args.model, dev, allow_unfinished=args.allow_unfinished)
    dataset = record_dataset(model, args.dataset)
    eps = args.eps
    if eps is None:
        if args.threat_model != "Linf":
            raise UserError("--eps is required with --threat-model L2")
        eps = claim_eps(dataset)
    res = cvgr.benchmark(model, dataset, args.threat_model, eps, args.n_images, args.version, dev,
                         attacks=args.attacks, batch_size=args.batch_size, seed=args.seed,
                         data_root=args.data_root, progress=not (args.quiet or args.json))
    res.model["source"] = args.model
    emit(args, res.to_dict(), [res.summary()])  # the numbers first: a failed write keeps them
    if args.out:
        res.save(args.out)
        note(args, f"wrote {args.out}")
    return 0

