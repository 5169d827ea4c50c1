"""`cvgr zoo`: the shipped models (the paper's, at the paper's budget) and their numbers.

  cvgr zoo [list] [--json]                 the table (untrained / unevaluated entries say so)
  cvgr zoo train [NAMES] --runs-dir DIR        train entries into DIR/<dataset>/<name>, resumable
  cvgr zoo publish RUN_DIR... | --runs-dir DIR copy finished runs into the zoo (alias: add)
  cvgr zoo evaluate [NAMES] --n-images 500        clean, PGD(8), standard AutoAttack; JSON per model
  cvgr zoo doc --out docs/zoo.md           the zoo page, from the stored numbers
               [--readme README.md]        and the README's zoo table
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from cvgr.cli._common import add_device, add_gr_step, add_quiet
from cvgr.devices import resolve_device
from cvgr.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `cvgr zoo` and its actions: list (the default), train, publish (alias add),
    evaluate and doc."""
    # `cvgr zoo` alone is `cvgr zoo list`, so the zoo command takes the list action's options.
    # An action's copies of them default to SUPPRESS: given after the action they win, else
    # the values given before it stand.
    p = sub.add_parser("zoo", help="the model zoo: table, train, publish, evaluate, doc",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_list_options(p)
    p.set_defaults(func=run_list)
    zoo_dir = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_zoo_dir(zoo_dir)
    add_quiet(zoo_dir)
    quiet = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    add_quiet(quiet)
    s = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    _register_list(s)
    _register_train(s, quiet)
    _register_publish(s, zoo_dir)
    _register_evaluate(s, zoo_dir)
    _register_doc(s, zoo_dir)


def _register_list(s: argparse._SubParsersAction) -> None:
    """`cvgr zoo list`: the table (also `cvgr zoo` alone)."""
    q = s.add_parser("list", argument_default=argparse.SUPPRESS,
                     help="the zoo table (the default action)")
    _add_list_options(q)
    q.set_defaults(func=run_list)


def _register_train(s: argparse._SubParsersAction, quiet: argparse.ArgumentParser) -> None:
    """`cvgr zoo train`: train entries into resumable run directories."""
    q = s.add_parser("train", parents=[quiet],
                     help="train zoo entries (resumable run directories)")
    q.add_argument("names", nargs="*", metavar="NAME", help="entries (default all)")
    q.add_argument("--runs-dir", default="runs/zoo", metavar="DIR",
                   help="runs go to DIR/<dataset>/<name> (default runs/zoo)")
    q.add_argument("--data-root", default=None, help="directory holding the datasets")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_gr_step(q)
    add_device(q)
    q.set_defaults(func=_no_json(run_train))


def _register_publish(s: argparse._SubParsersAction, zoo_dir: argparse.ArgumentParser) -> None:
    """`cvgr zoo publish` and its alias `cvgr zoo add`: copy finished runs into the zoo."""
    for action in ("publish", "add"):
        q = s.add_parser(action, parents=[zoo_dir],
                         help="copy finished runs into the zoo" + (" (as publish)"
                                                                   if action == "add" else ""))
        q.add_argument("runs", nargs="*", metavar="RUN_DIR", help="finished run directories")
        q.add_argument("--runs-dir", default=None, metavar="DIR",
                       help="publish every finished entry found in DIR/<dataset>/<name>")
        q.add_argument("--name", default=None, help="the entry (default: found from the run)")
        q.add_argument("--hardware", default=None,
                       help="what the runs trained on (default: detected here)")
        q.set_defaults(func=_no_json(run_publish))


def _register_evaluate(s: argparse._SubParsersAction, zoo_dir: argparse.ArgumentParser) -> None:
    """`cvgr zoo evaluate`: measure the table's numbers (or follow up with --further)."""
    q = s.add_parser("evaluate", parents=[zoo_dir], help="measure the table's numbers")
    q.add_argument("names", nargs="*", metavar="NAME", help="entries (default all shipped)")
    q.add_argument("--n-images", type=int, default=500, help="first N test images (default 500)")
    q.add_argument("--version", choices=("standard", "art", "custom"), default="standard")
    q.add_argument("--attacks", default=None, help="with --version custom")
    q.add_argument("--force", action="store_true", help="measure again even if stored")
    q.add_argument("--further", default=None, metavar="ATTACKS",
                   help="attack the survivors of the stored standard AutoAttack again with "
                        "these attacks (e.g. square:queries=10000) and store the worst case")
    q.add_argument("--seed", type=int, default=1, help="seed of --further (default 1)")
    q.add_argument("--data-root", default=None, help="directory holding the datasets")
    add_device(q)
    q.set_defaults(func=_no_json(run_evaluate))


def _register_doc(s: argparse._SubParsersAction, zoo_dir: argparse.ArgumentParser) -> None:
    """`cvgr zoo doc`: write the zoo page (and the README's zoo table)."""
    q = s.add_parser("doc", parents=[zoo_dir], help="write the zoo page (markdown)")
    q.add_argument("--out", default="docs/zoo.md", help="default docs/zoo.md")
    q.add_argument("--readme", default=None, metavar="FILE",
                   help="also rewrite the zoo table between FILE's zoo markers (README.md)")
    q.set_defaults(func=_no_json(run_doc))


def _add_zoo_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zoo-dir", metavar="DIR",
                        help="zoo weights directory (default: the package's, or $CVGR_ZOO_DIR)")


def _add_list_options(parser: argparse.ArgumentParser) -> None:
    """The table's options: on `cvgr zoo` itself (defaults set) and on `cvgr zoo list`."""
    _add_zoo_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    add_quiet(parser)


def _no_json(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """An action that prints no JSON refuses a --json given before it (`cvgr zoo --json
    ACTION`) instead of ignoring it."""
    def checked(args: argparse.Namespace) -> int:
        if args.json:
            raise UserError(f"--json goes with the zoo table (`cvgr zoo --json` or `cvgr zoo "
                            f"list --json`), not with `cvgr zoo {args.zoo_command}`",
                            param="--json")
        return run(args)

    return checked


def run_list(args: argparse.Namespace) -> int:
    from cvgr import zoo

    rs = zoo.rows(args.zoo_dir)
    if args.json:
        print(json.dumps(rs))
        return 0
    head, body = zoo.table(rs)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in body:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    shipped = sum(r["shipped"] for r in rs)
    print(f"{shipped} of {len(rs)} models shipped in {zoo.zoo_directory(args.zoo_dir)}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import torch

    from cvgr import zoo

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    done = zoo.train(args.names, args.runs_dir, device=str(dev), data_root=args.data_root,
                     progress=not args.quiet, gr_step=args.gr_step)
    print(f"trained {len(done)} zoo model(s) under {args.runs_dir}; copy them into the zoo with "
          f"`cvgr zoo publish --runs-dir {args.runs_dir}`")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from cvgr import zoo

    if bool(args.runs) == bool(args.runs_dir):
        raise UserError("give run directories or --runs-dir DIR, not both or neither")
    if args.name and len(args.runs) != 1:
        raise UserError("--name goes with exactly one run directory")
    if args.runs_dir:
        found = zoo.publishable_runs(args.runs_dir)
        if not found:
            print(f"no finished zoo run under {args.runs_dir}", file=sys.stderr)
            return 1
        targets = [(str(d), e.name) for e, d in found]
    else:
        targets = [(r, args.name) for r in args.runs]
    for run_dir, name in targets:
        path = zoo.publish(run_dir, name, zoo_dir=args.zoo_dir, hardware=args.hardware)
        print(f"published {run_dir} -> {path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from cvgr import zoo

    if args.version != "custom" and args.attacks is not None:
        raise UserError("--attacks goes with --version custom")
    dev = resolve_device(args.device)
    if args.further is not None:
        if not args.names:
            raise UserError("--further needs the zoo models to follow up, by name")
        for name in args.names:
            zoo.evaluate_further(name, args.further, seed=args.seed, zoo_dir=args.zoo_dir,
                                 device=str(dev), data_root=args.data_root,
                                 progress=not args.quiet)
        return 0
    res = zoo.evaluate(args.names, args.n_images, zoo_dir=args.zoo_dir, device=str(dev),
                       version=args.version, attacks=args.attacks, force=args.force,
                       data_root=args.data_root, progress=not args.quiet)
    if not res:
        print("no zoo model is shipped yet: nothing to evaluate", file=sys.stderr)
        return 1
    print(f"evaluated {len(res)} zoo model(s); `cvgr zoo` shows the table")
    return 0


def run_doc(args: argparse.Namespace) -> int:
    from cvgr.zoo import doc

    path = doc.write(args.out, args.zoo_dir,
                     command="cvgr zoo doc" + (f" --out {args.out}"
                                               if args.out != "docs/zoo.md" else ""))
    print(f"wrote {path}")
    if args.readme:
        print(f"wrote {doc.update_readme(args.readme, args.zoo_dir)}")
    return 0
