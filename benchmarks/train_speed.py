"""Seconds per training epoch of every defense, as ratios to real MNISTNetV0 with no defense.

Times `cvgr.train.train_epoch` itself (data, augmentation, defense, SGD step, the loop's own
bookkeeping) on Fashion-MNIST for a fixed number of batches of 64, then extrapolates a full
epoch (938 batches) plus validation on the 10,000 test images, which is how the paper's code
was timed. All rows are measured in this one run, so the ratios compare like with like.
Each GR row runs the step `cvgr train` runs by default for the paper's recipe (`--gr-step
auto`: on a CPU with a C++ compiler the compiled graph, else the traced one); the rows
"... eager" and "... traced" run the other kinds.

    python benchmarks/train_speed.py [--batches 200] [--repeats 2] [--device cpu] [--no-write]
    python benchmarks/train_speed.py --threads 1 --clock cpu   # on a machine others share

Writes the table into the "Training speed" section of docs/benchmarks.md (other sections kept).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch

from cvgr.train import TrainConfig
from cvgr.train.timing import time_epochs

FULL_EPOCH_BATCHES = 938  # ceil(60000 / 64)
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
JSON = DOC.parent / "figures" / "train_speed.json"
SECTION = "## Training speed"

TRADES = {"trades": 6.0, "adv_eps": 0.1, "adv_steps": 10}  # the published beta and steps
# (label, arch, complex, defense settings, paper ratio, our target ratio)
ROWS: list[tuple[str, str, bool, dict, float | None, float | None]] = [
    ("real none", "MNISTNetV0", False, {}, 1.0, None),
    ("real GR exact", "MNISTNetV0", False, {"beta": 64.0}, 1.33, None),
    ("real AT pgd4", "MNISTNetV0", False, {"adv_eps": 0.1, "adv_steps": 4}, 2.31, None),
    ("real AT pgd8", "MNISTNetV0", False, {"adv_eps": 0.1, "adv_steps": 8}, 3.64, None),
    ("complex none", "MNISTNetV1", True, {}, 1.42, 1.1),
    ("complex GR exact", "MNISTNetV1", True, {"beta": 64.0}, 2.39, 2.0),  # the default step
    ("complex GR reference", "MNISTNetV1", True, {"beta": 64.0, "gr_mode": "reference"},
     None, None),
    ("complex GR fd", "MNISTNetV1", True, {"beta": 64.0, "gr_mode": "fd"}, None, 1.3),
    # the same exact objective, other --gr-step kinds
    ("complex GR exact eager", "MNISTNetV1", True, {"beta": 64.0, "gr_step": "eager"},
     None, None),
    ("complex GR exact traced", "MNISTNetV1", True, {"beta": 64.0, "gr_step": "traced"},
     None, None),
    # the field's standard defenses and AT on the complex net (issue 18; the zoo's entries)
    ("real AT pgd10", "MNISTNetV0", False, {"adv_eps": 0.1, "adv_steps": 10}, None, None),
    ("real TRADES", "MNISTNetV0", False, TRADES, None, None),
    ("complex AT pgd4", "MNISTNetV1", True, {"adv_eps": 0.1, "adv_steps": 4}, None, None),
    ("complex TRADES", "MNISTNetV1", True, TRADES, None, None),
    ("complex GR+AT pgd4", "MNISTNetV1", True, {"beta": 64.0, "adv_eps": 0.1, "adv_steps": 4},
     None, None),
]


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=200, help="batches of 64 per timing (200)")
    ap.add_argument("--repeats", type=int, default=2, help="timings per row; best kept (2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default all)")
    ap.add_argument("--only", default=None, help="regex on row labels (real none always runs)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (default) or this process's CPU time; with --threads 1 "
                         "the CPU clock is immune to other programs sharing the cores")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [r for r in ROWS if r[0] == "real none" or not args.only
            or re.search(args.only, r[0])]
    print(f"train_speed: {args.batches} batches x {args.repeats} on {device}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock")
    # each GR row runs what `cvgr train` runs by default ("auto", resolved for the paper's
    # recipe: 30 full Fashion-MNIST epochs on this device) unless the row names its step
    configs = {label: TrainConfig(dataset="fashion-mnist", arch=arch, complex=cplx,
                                  **{k: v for k, v in defense.items() if k != "gr_step"})
               for label, arch, cplx, defense, _p, _t in rows}
    steps = {label: defense["gr_step"] for label, _a, _c, defense, _p, _t in rows
             if "gr_step" in defense}
    timed = time_epochs(configs, args.batches, repeats=args.repeats, device=device,
                        data_root=args.data_root, gr_step=steps, clock=args.clock,
                        log=lambda line: print(line, flush=True))
    # fastest timing of each: other load on the machine only ever adds time
    results = {label: (t["seconds_per_batch"], t["validation_seconds"])
               for label, t in timed.items()}
    base_batch, base_val = results["real none"]
    base_epoch = base_batch * FULL_EPOCH_BATCHES + base_val
    lines = [
        "| model / defense | ms per batch | s per epoch (est.) | ratio (train) "
        "| ratio (epoch) | paper ratio | target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    print(f"\n{'row':<22} {'ms/batch':>9} {'s/epoch':>8} {'ratio':>6} {'epoch':>6} "
          f"{'paper':>6} {'target':>6}")
    for label, _a, _c, _d, paper, target in rows:
        per_batch, val = results[label]
        epoch = per_batch * FULL_EPOCH_BATCHES + val
        ratio, ratio_epoch = per_batch / base_batch, epoch / base_epoch
        ok = "" if target is None else (" ok" if ratio <= target else " MISSED")
        print(f"{label:<22} {1000 * per_batch:9.2f} {epoch:8.1f} {ratio:6.2f} {ratio_epoch:6.2f}"
              f" {fmt(paper):>6} {fmt(target, '<.2f'):>6}{ok}")
        lines.append(f"| {label} | {1000 * per_batch:.2f} | {epoch:.1f} | {ratio:.2f} | "
                     f"{ratio_epoch:.2f} | {fmt(paper)} | "
                     f"{'-' if target is None else f'<= {target:.2f}{ok}'} |")
    if args.no_write:
        return
    from cvgr.devices import describe_hardware

    where = f"{describe_hardware(device, labelled=True)}, {torch.get_num_threads()} threads"
    write_json_rows(results, where, args)
    body = "\n".join([
        SECTION,
        "",
        "Written by `benchmarks/train_speed.py`; rerun it to refresh. Fashion-MNIST, batch 64, "
        f"{args.batches} batches timed through `cvgr.train.train_epoch`"
        " (data, augmentation, defense, SGD step), after 10 warm-up batches; rows interleaved, "
        f"best of {args.repeats}; {args.clock} clock. "
        f"s per epoch = ms per batch x {FULL_EPOCH_BATCHES} + validation on 10,000 test images."
        " Ratios are to real MNISTNetV0 with no defense from the same run. GR: beta 64, q 1; "
        "AT: PGD, eps 0.1, step 1.85 eps/k, random start; TRADES: beta 6, eps 0.1, 10 inner "
        "steps of eps/4; GR+AT: the penalty on the PGD batch's loss.",
        "",
        f"Measured on {where}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}:",
        "",
        *lines,
        "",
        "The paper's own code on a 2-core CPU machine (full epoch with validation): real none "
        "19.8 s, real GR 36.3 s, complex GR 125 s. What bounds the GR ratios, with a profile: "
        "docs/training.md, section Speed.",
        "",
    ])
    write_section(body)
    print(f"\nwrote {DOC}")


def write_json_rows(results: dict[str, tuple[float, float]], where: str,
                    args: argparse.Namespace) -> None:
    """The same rows as data (docs/figures/train_speed.json), for `cvgr zoo doc`'s
    robustness-cost picture: every defense's cost as a ratio to real no defense."""
    from cvgr.io import write_json

    base_batch, base_val = results["real none"]
    base_epoch = base_batch * FULL_EPOCH_BATCHES + base_val
    rows = {label: {"ms_per_batch": round(1000 * b, 3),
                    "s_per_epoch": round(b * FULL_EPOCH_BATCHES + v, 2),
                    "ratio_train": round(b / base_batch, 3),
                    "ratio_epoch": round((b * FULL_EPOCH_BATCHES + v) / base_epoch, 3)}
            for label, (b, v) in results.items()}
    write_json(JSON, {"written_by": "benchmarks/train_speed.py", "hardware": where,
                      "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d"),
                      "clock": args.clock, "batches": args.batches, "repeats": args.repeats,
                      "rows": rows})


def write_section(body: str) -> None:
    """Replace (or append) our section of docs/benchmarks.md, keeping everything else."""
    from cvgr.io import atomic_write

    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        new = text.rstrip("\n") + "\n\n" + body
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        new = text[:start] + body + ("" if nxt < 0 else "\n" + text[nxt + 1:])

    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(new)

    atomic_write(DOC, w)


if __name__ == "__main__":
    main()
