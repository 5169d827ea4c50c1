"""`cvgr reproduce`: run the paper's experiments on one dataset and write a report.

Resumable: rerunning the same command skips finished runs and evaluations.
"""

from __future__ import annotations

import argparse

from cvgr.cli._common import add_device, pick_device


def register(sub: argparse._SubParsersAction) -> None:
    from cvgr.data import DATASETS
    from cvgr.experiments.plan import BUDGETS

    shown = [n for n, b in BUDGETS.items() if not b.hidden]
    p = sub.add_parser("reproduce", help="run the paper's experiments and write a report",
                       description=__doc__,
                       epilog="budgets: " + "; ".join(f"{n}: {BUDGETS[n].description}"
                                                      for n in shown))
    p.add_argument("--dataset", default="fashion-mnist", choices=list(DATASETS),
                   help="dataset (default fashion-mnist)")
    p.add_argument("--budget", default="quick", metavar="{" + ",".join(shown) + "}",
                   help="how much to run (default quick); 'tiny' exists for tests")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N jobs at once in local processes (default 1)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where datasets are looked for first")
    p.add_argument("--real-arch", default=None, help="real architecture (default: the paper's)")
    p.add_argument("--complex-arch", default=None,
                   help="complex architecture (default: the paper's)")
    p.add_argument("--list", action="store_true", help="print the job list and exit")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the report from finished results; run nothing")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvgr.errors import UserError
    from cvgr.experiments import build_plan, report_only, reproduce

    if args.report_only:
        res = report_only(args.out)
        _print_verdicts(res["verdicts"])
        print(f"wrote {res['report']}")
        return 0
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.list:
        plan = build_plan(args.dataset, args.budget, real_arch=args.real_arch,
                          complex_arch=args.complex_arch)
        for job in plan["jobs"]:
            deps = f" <- {', '.join(job['deps'])}" if job["deps"] else ""
            print(f"{job['id']:<34} {job['kind']:<8}{deps}")
        print(f"{len(plan['jobs'])} jobs")
        return 0
    device = None if args.device is None else str(pick_device(args.device))
    res = reproduce(args.dataset, args.budget, args.out, workers=args.jobs, device=device,
                    data_root=args.data_root, real_arch=args.real_arch,
                    complex_arch=args.complex_arch)
    _print_verdicts(res["verdicts"])
    failed = res["outcome"]["failed"]
    return 1 if failed else 0


def _print_verdicts(verdicts: dict) -> None:
    for key, v in verdicts.items():
        print(f"{key:<30} {v['status']:<14} {v['text']}")
