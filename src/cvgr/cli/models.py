"""`cvgr models`: parameters and MACs of every architecture, real and complex."""

from __future__ import annotations

import argparse

from cvgr.cli._common import add_output, emit
from cvgr.models import count_macs, count_parameters, create_model, list_models, resolve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="table of architectures: parameters and MACs per image",
                       description=__doc__)
    add_output(p)
    p.set_defaults(func=run)


def table() -> list[dict]:
    rows = []
    for name in list_models():
        spec = resolve(name)
        for cplx in (False, True):
            m = create_model(spec.name, complex=cplx)
            rows.append({"arch": spec.name, "reference": spec.reference_name,
                         "kind": "complex" if cplx else "real",
                         "params": count_parameters(m), "macs": count_macs(m)})
    return rows


def run(args: argparse.Namespace) -> int:
    rows = table()
    emit(args, rows, [
        f"{'architecture':<20} {'reference':<13} {'kind':<8} {'params':>11} {'MACs/image':>13}",
        *(f"{r['arch']:<20} {r['reference']:<13} {r['kind']:<8} {r['params']:>11,} "
          f"{r['macs']:>13,}" for r in rows),
        "A complex multiply-accumulate counts as 4 real ones."])
    return 0
