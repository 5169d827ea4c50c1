"""What the `paper` budget of each dataset costs, in job-hours, from the plan and measured speeds.

    python benchmarks/job_hours.py [--budget paper]

Train jobs: epochs x seconds per epoch of their defense, measured on Fashion-MNIST (60,000
images, MNISTNetV0/V1, batch 64, 2 CPU threads; docs/benchmarks.md, "Training speed"), scaled
by the job's training images. CIFARNet1 was not measured: its rows (and its evaluations) are
scaled by its MACs against MNISTNetV0's, an estimate, marked so. Evaluate jobs: the plan's
cost units (images x forward+backward passes) at the measured PGD-8 rate of MNISTNetV0
(docs/benchmarks.md, "Attacks": 663 images/s x 9 passes); ART's AutoAttack is slower per
pass, so those rows are a lower bound. These are CPU figures; no GPU figure is measured yet
(docs/cluster.md).
"""

from __future__ import annotations

import argparse

from cvgr.data import DATASETS
from cvgr.experiments import build_plan

# s per epoch (training pass + validation), 60,000 images, 2 CPU threads, 2026-11-24
S_PER_EPOCH = {("real", "none"): 13.2, ("real", "noise"): 13.2, ("real", "gr"): 33.9,
               ("real", "pgd4"): 56.0, ("real", "pgd8"): 96.7, ("complex", "none"): 13.1,
               ("complex", "noise"): 13.1, ("complex", "gr"): 32.6}
MEASURED_IMAGES = 60000
EVAL_UNITS_PER_S = 663 * 9  # PGD-8 images/s x passes per image (MNISTNetV0, 2 threads)


def _defense(c: dict) -> str:
    if c.get("adv_steps"):
        return f"pgd{c['adv_steps']}"
    if c.get("beta", 0) > 0:
        return "gr"
    return "noise" if c.get("noise", 0) > 0 else "none"


def _mac_scale(arch: str, complex_: bool, base: str) -> float:
    from cvgr.models import count_macs, create_model

    return (count_macs(create_model(arch, complex=complex_))
            / count_macs(create_model(base, complex=complex_)))


def hours(dataset: str, budget: str) -> dict[str, float | bool | int]:
    plan = build_plan(dataset, budget)
    train_s = eval_s = 0.0
    estimated = False
    scales: dict[tuple[str, bool], float] = {}
    real = plan["archs"]["real"]
    eval_scale = 1.0 if real == "MNISTNetV0" else _mac_scale(real, False, "MNISTNetV0")
    for job in plan["jobs"]:
        if job["kind"] != "train":
            eval_s += job["cost"] / EVAL_UNITS_PER_S * eval_scale
            continue
        c = job["config"]
        kind = "complex" if c["complex"] else "real"
        base = "MNISTNetV1" if c["complex"] else "MNISTNetV0"
        key = (c["arch"], c["complex"])
        if key not in scales:
            scales[key] = 1.0 if c["arch"] == base else _mac_scale(c["arch"], c["complex"], base)
        estimated |= c["arch"] != base
        per_epoch = S_PER_EPOCH[(kind, _defense(c))] * scales[key]
        train_s += plan["epochs"] * per_epoch * plan["n_train"] / MEASURED_IMAGES
    return {"jobs": len(plan["jobs"]), "train_h": train_s / 3600, "eval_h": eval_s / 3600,
            "estimated": estimated, "epochs": plan["epochs"], "n_train": plan["n_train"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="paper")
    args = ap.parse_args()
    print(f"budget {args.budget}: CPU job-hours (2 threads per job)\n")
    print("| dataset | jobs | epochs x train images | train job-h | eval job-h | total |")
    print("|---|---:|---|---:|---:|---:|")
    for ds in DATASETS:
        h = hours(ds, args.budget)
        mark = " (est.: CIFARNet1 scaled by MACs)" if h["estimated"] else ""
        print(f"| {ds}{mark} | {h['jobs']} | {h['epochs']} x {h['n_train']:,} | "
              f"{h['train_h']:.2f} | {h['eval_h']:.2f} | {h['train_h'] + h['eval_h']:.2f} |")


if __name__ == "__main__":
    main()
