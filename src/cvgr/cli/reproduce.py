"""`cvgr reproduce`: run the paper's experiments on one dataset and write a report.

Resumable: rerunning the same command skips finished runs and evaluations. Jobs run in this
process, in N local processes (--jobs N), or as tasks on a Ray cluster (--executor ray).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cvgr.cli._common import add_device, add_gr_step, add_output, emit, note

if TYPE_CHECKING:
    from cvgr.experiments.ray_executor import RayOptions


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
    p.add_argument("--out", metavar="DIR",
                   help="output directory (needed for everything but --list)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="local executor: run N jobs at once in local processes (default 1)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where datasets are looked for first")
    p.add_argument("--real-arch", default=None, help="real architecture (default: the paper's)")
    p.add_argument("--complex-arch", default=None,
                   help="complex architecture (default: the paper's)")
    p.add_argument("--n-images", type=int, default=None, metavar="N",
                   help="test images of every evaluation (default: the budget's; e.g. 1000 "
                        "for the paper budget on a CPU); the report states the count")
    p.add_argument("--only", action="append", default=None, metavar="PATTERN",
                   help="run only the jobs whose ids match this shell pattern (repeatable; "
                        "--list shows the ids) and the jobs they need; the report marks the "
                        "rest pending")
    p.add_argument("--retrain", action="store_true",
                   help="train every model here, even where a shipped zoo model has the "
                        "identical configuration (by default it is taken from the zoo)")
    p.add_argument("--list", action="store_true", help="print the job list and exit")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the report from finished results; run nothing")
    add_device(p)
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic PyTorch kernels (matters on GPU; see docs/cluster.md)")
    add_gr_step(p)
    _add_ray(p)
    add_output(p)
    p.set_defaults(func=run)


def _add_ray(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (docs/cluster.md; needs pip install 'cvgr[cluster]')")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local processes (default) or one Ray task per job")
    g.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="join this Ray cluster (default: start a local Ray instance)")
    g.add_argument("--cpus-per-job", type=float, default=1.0, metavar="N",
                   help="CPUs Ray reserves per job (default 1; also its PyTorch threads)")
    g.add_argument("--gpus-per-job", type=float, default=None, metavar="F",
                   help="GPU share per job with --device cuda, fractions allowed "
                        "(default 1 with --device cuda, else 0)")
    g.add_argument("--ray-shared-fs", default="auto", choices=["auto", "yes", "no"],
                   help="do all nodes see --out at the same path? auto tests it (default); "
                        "no: workers send their files back")
    g.add_argument("--ray-retries", type=int, default=3, metavar="N",
                   help="restarts of a job whose worker died (default 3)")
    g.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray instance (default: all; not with --ray-address)")


def run(args: argparse.Namespace) -> int:
    from cvgr.errors import UserError
    from cvgr.experiments import build_plan, report_only, reproduce

    if args.out is None and not args.list:
        raise UserError("--out DIR is needed: the directory the reproduction writes "
                        "(or reads, with --report-only)")
    if args.report_only:
        res = report_only(args.out)
        _print_verdicts(args, res["verdicts"], {"report": str(res["report"])})
        note(args, f"wrote {res['report']}")
        return 0
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.list:
        plan = build_plan(args.dataset, args.budget, real_arch=args.real_arch,
                          complex_arch=args.complex_arch, n_images=args.n_images)
        for job in plan["jobs"]:
            deps = f" <- {', '.join(job['deps'])}" if job["deps"] else ""
            print(f"{job['id']:<34} {job['task']:<8}{deps}")
        print(f"{len(plan['jobs'])} jobs")
        return 0
    res = reproduce(args.dataset, args.budget, args.out, workers=args.jobs,
                    device=args.device, data_root=args.data_root,
                    real_arch=args.real_arch, complex_arch=args.complex_arch,
                    deterministic=args.deterministic, executor=args.executor,
                    ray=_ray_options(args), quiet=args.quiet, gr_step=args.gr_step,
                    n_images=args.n_images, use_zoo=not args.retrain, only=args.only)
    failed = res["outcome"]["failed"]
    _print_verdicts(args, res["verdicts"], {"report": str(res["report"]), "failed": failed,
                                            "ran": res["outcome"]["ran"],
                                            "skipped": res["outcome"]["skipped"]})
    return 1 if failed else 0


def _ray_options(args: argparse.Namespace) -> RayOptions | None:
    if args.executor != "ray":
        for flag, value, default in (("--ray-address", args.ray_address, None),
                                     ("--gpus-per-job", args.gpus_per_job, None),
                                     ("--ray-cpus", args.ray_cpus, None)):
            if value != default:
                from cvgr.errors import UserError

                raise UserError(f"{flag} needs --executor ray")
        return None
    from cvgr.experiments.ray_executor import RayOptions

    gpus = args.gpus_per_job
    if gpus is None:
        gpus = 1.0 if (args.device or "").startswith("cuda") else 0.0
    return RayOptions(address=args.ray_address, cpus_per_job=args.cpus_per_job,
                      gpus_per_job=gpus, shared_fs=args.ray_shared_fs,
                      max_retries=args.ray_retries, num_cpus=args.ray_cpus)


def _print_verdicts(args: argparse.Namespace, verdicts: dict, extra: dict) -> None:
    """The verdicts: one line each, or with --json one document with `extra` beside them."""
    emit(args, {"verdicts": verdicts, **extra},
         [f"{key:<30} {v['status']:<14} {v['text']}" for key, v in verdicts.items()])
