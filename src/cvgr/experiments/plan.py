"""The reproduction as plain data: budgets and the list of jobs (per-dataset settings live on
the dataset's spec, cvgr.data.specs).

Every job is a JSON-serialisable dict, so the run list can be written to disk, inspected,
and handed to any executor (local processes here; a cluster engine such as Ray later):

    {"id": "train-complex-gr", "task": "train", "config": {TrainConfig fields},
     "deps": [], "cost": 1.2e6, "group": "main"}
    {"id": "eval-pgd-complex-gr", "task": "evaluate", "config": {"what": "curve", ...},
     "deps": ["train-complex-gr"], "cost": 2.7e4}

A train job's output is ``runs/<id>/`` (a `cvgr train` run directory); an evaluate job's is
``evals/<id>.json``. An evaluation names the models it needs by their train job ids only, so
a job is complete data: nothing else is needed to run it on another machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from cvgr.data.specs import DATASETS, DatasetSettings
from cvgr.errors import UserError
from cvgr.experiments.jobs import (
    AutoAttackConfig,
    CurveConfig,
    EvalConfig,
    EvalJob,
    IdentityConfig,
    Job,
    MaskingConfig,
    SizesConfig,
    TimingConfig,
    TrainJob,
    TransferConfig,
    TransferCurvesConfig,
)
from cvgr.names import AdvKind, Attack, DefensePart, defense_name
from cvgr.paper import PAPER_TIME_RATIOS

__all__ = ["BUDGETS", "PAPER_TIME_RATIOS", "TIMED_MODELS", "Budget", "DatasetSettings",
           "build_plan", "check_plan", "eps_grid", "model_label"]



@dataclass(frozen=True)
class Budget:
    """How much of the reproduction to run. None means "the paper's value" (full)."""

    name: str
    epochs: int | None  # None: the dataset's recipe (30; CIFAR-10 80)
    train_images: int | None  # training images (None: all)
    n_images: int | None  # test images for validation and attacks (None: the full test set)
    eps_points: int | None  # points of the robustness grid, evenly spread (None: all)
    sweep: tuple[float, ...]  # beta sweep as multiples of the dataset's paper beta
    seeds: tuple[int, ...]  # independently seeded GR nets for the transfer matrix (A, B, C)
    nes_images: int
    nes_queries: int
    masking_images: int | None
    aa_images: int
    aa_version: str  # AutoAttack version: "standard" (the authors'), "art" or "custom"
    aa_attacks: str | None  # the attack list of a custom version
    description: str
    hidden: bool = False
    lr_scale: float = 1.0  # x the recipe's learning rate (short budgets make up for few steps)
    # batches per model of the training-time job (None: no such job; the time table then
    # comes from the training runs' own seconds)
    timing_batches: int | None = None
    transfer_curves: bool = False  # the transfer matrix at every eps of the grid, too


# The quick budget's AutoAttack: the authors' APGD-CE (20 iterations) and Square (100 queries),
# about the cost of the ART subset it replaced; the report names it as a custom version.
QUICK_AUTOATTACK = "apgd-ce:steps=20,square:queries=100"

BUDGETS: dict[str, Budget] = {b.name: b for b in (
    Budget("tiny", 1, 128, 32, 2, (1.0, 4.0), (0, 1), 4, 5, 16, 8, "custom", "apgd-ce:steps=3",
           "for tests only: seconds, numbers meaningless", hidden=True, timing_batches=2,
           transfer_curves=True),
    Budget("quick", 3, 10000, 500, 6, (0.25, 1.0, 2.0), (0, 1, 2), 50, 50, 200, 100,
           "custom", QUICK_AUTOATTACK,
           "minutes on 2 CPU cores: 3 epochs on 10000 images at 2x the recipe's learning "
           "rate, 500 test images, a cheap declared AutoAttack", lr_scale=2.0),
    Budget("standard", 10, 20000, 1000, None, (1 / 16, 0.25, 1.0, 4.0, 16.0), (0, 1, 2), 200,
           100, 1000, 500, "standard", None,
           "10 epochs on 20000 images, 1000 test images, full eps grid, the standard "
           "AutoAttack (a GPU helps)", timing_batches=100, transfer_curves=True),
    Budget("paper", None, None, None, None, (1 / 16, 0.25, 1.0, 4.0, 16.0), (0, 1, 2), 1000,
           100, None, 1000, "standard", None,
           "the paper's recipe: all epochs, all training images, the full test set, the "
           "standard AutoAttack (GPU)", timing_batches=300, transfer_curves=True),
)}

TIMED_MODELS = ("real-none", "real-gr", "real-pgd4", "real-pgd8", "complex-none", "complex-gr")
"""The six nets of the seed's training-time table, by model label."""

# relative cost of one training image, by defense (one forward+backward = 1); used for ETA only
_TRAIN_COST = {"none": 1.0, "noise": 1.0, "gr": 4.0, "pgd4": 5.0, "pgd8": 9.0}
_COMPLEX_GR_COST = 12.0


def _aa_cost(version: str, attacks: str | None) -> float:
    """Forward+backward passes per image of an AutoAttack version (for the ETA only)."""
    from cvgr.evaluate.autoattack import version_attacks

    specs = version_attacks(version, attacks)
    if specs is None:  # standard: APGD-CE, 9 x APGD-T, 9 x FAB-T (100 each), Square 5000
        return 100 * 2 + 900 * 2 + 900 * 3 + 5000 / 3
    cost = 0.0
    for sp in specs:
        cost += sp.get("queries", 0) / 3 + (sp.get("steps", 0) * sp.get("restarts", 1)
                                            * sp.get("targets", 1) * 2)
    return cost


def eps_grid(settings: DatasetSettings, points: int | None) -> list[float]:
    """The dataset's grid 0..eps_max by eps_step, thinned to `points` evenly spread values."""
    n = int(round(settings.eps_max / settings.eps_step))
    full = [round(i * settings.eps_step, 6) for i in range(n + 1)]
    if points is None or points >= len(full):
        return full
    if points < 2:
        raise UserError("a robustness curve needs at least 2 eps values")
    idx = sorted({round(i * (len(full) - 1) / (points - 1)) for i in range(points)})
    return [full[i] for i in idx]


def model_label(job_id: str) -> str:
    """'train-complex-gr' -> 'complex-gr': the name a model carries in tables and plots."""
    return job_id.removeprefix("train-")


def _train_cost(cfg: dict[str, Any]) -> float:
    """Relative cost of one training image of `cfg` (its first defense part decides)."""
    keys = ("beta", "noise", "adv_eps", "adv_steps", "adv_kind", "gr_mode")
    first = defense_name(**{k: cfg[k] for k in keys if k in cfg}).split("+")[0]
    if first == DefensePart.GR and cfg["complex"]:
        return _COMPLEX_GR_COST
    return _TRAIN_COST[first]


class _Builder:
    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.configs: dict[str, dict[str, Any]] = {}
        self._train_ids: dict[str, str] = {}

    def train(self, job_id: str, config: dict[str, Any], cost: float, group: str) -> str:
        """Add a train job unless an identical config is already planned; return its id."""
        key = repr(sorted(config.items()))
        if key in self._train_ids:
            return self._train_ids[key]
        self._train_ids[key] = job_id
        self.configs[job_id] = config
        self.jobs.append(TrainJob(id=job_id, task="train", config=config, deps=[], cost=cost,
                                  group=group))
        return job_id

    def evaluate(self, job_id: str, config: EvalConfig, deps: list[str], cost: float,
                 group: str) -> str:
        self.jobs.append(EvalJob(id=job_id, task="evaluate", config=config,
                                 deps=sorted(set(deps)), cost=cost, group=group))
        return job_id


class _Planner:
    """Builds one dataset's jobs for one budget (see `build_plan`)."""

    def __init__(self, dataset: str, budget: Budget, archs: dict[str, str],
                 n_images: int | None = None) -> None:
        spec = DATASETS[dataset]
        self.dataset, self.b, self.s, self.archs = dataset, budget, spec.settings, archs
        self.epochs = budget.epochs
        self.lr = None if budget.lr_scale == 1.0 else spec.recipe.lr * budget.lr_scale
        self.run_epochs = budget.epochs or spec.recipe.epochs
        self.train_images = min(budget.train_images or spec.train_size, spec.train_size)
        self.n_images = min(n_images or budget.n_images or spec.test_size, spec.test_size)
        self.claim = round(self.s.claim_eps, 6)
        self.grid = sorted({*eps_grid(self.s, budget.eps_points), self.claim})
        self.bld = _Builder()

    def cfg(self, kind: str, *, beta: float = 0.0, noise: float = 0.0, adv_steps: int = 0,
            seed: int = 0) -> dict[str, Any]:
        b = self.b
        c: dict[str, Any] = {"dataset": self.dataset, "arch": self.archs[kind],
                             "complex": kind == "complex", "beta": beta, "noise": noise,
                             "seed": seed, "epochs": self.epochs, "train_images": b.train_images,
                             "test_images": b.n_images, "lr": self.lr}
        if adv_steps:
            c.update(adv_eps=self.s.adv_eps, adv_steps=adv_steps, adv_kind=str(AdvKind.PGD))
        return c

    def add(self, kind: str, name: str, group: str, **kw: Any) -> str:
        c = self.cfg(kind, **kw)
        cost = _train_cost(c) * self.train_images * self.run_epochs
        return self.bld.train(f"train-{kind}-{name}", c, cost, group)

    def models(self) -> dict[str, str]:
        """1. the compared models."""
        s, main = self.s, {}
        for kind in ("real", "complex"):
            main[f"{kind}-none"] = self.add(kind, "none", "main")
            main[f"{kind}-gr"] = self.add(kind, "gr", "main", beta=s.beta, noise=s.gr_noise)
            main[f"{kind}-noise"] = self.add(kind, "noise", "main", noise=s.noise)
        main["real-pgd4"] = self.add("real", "pgd4", "main", adv_steps=4)
        main["real-pgd8"] = self.add("real", "pgd8", "main", adv_steps=8)
        order = ["real-none", "real-noise", "real-gr", "real-pgd4", "real-pgd8",
                 "complex-none", "complex-noise", "complex-gr"]
        return {k: main[k] for k in order}

    def sweep(self) -> dict[str, list[str]]:
        """2. beta sweep (seed Figure 1); the paper-beta point is the main GR model."""
        out: dict[str, list[str]] = {"real": [], "complex": []}
        for kind in ("real", "complex"):
            for m in self.b.sweep:
                beta = float(self.s.beta * m)
                out[kind].append(self.add(kind, f"gr-beta{beta:g}", "sweep", beta=beta,
                                          noise=self.s.gr_noise))
        return out

    def seeded(self) -> list[str]:
        """3. independently seeded complex GR nets (seed Figures 2-3)."""
        return [self.add("complex", "gr" if seed == 0 else f"gr-seed{seed}", "seeds",
                         beta=self.s.beta, noise=self.s.gr_noise, seed=seed)
                for seed in self.b.seeds]

    def curves(self, main: dict[str, str]) -> None:
        n, grid = self.n_images, self.grid
        for label, tid in main.items():
            for attack, steps in ((Attack.FGSM, 1), (Attack.PGD, 8)):
                c = CurveConfig(what="curve", model=tid, attack=str(attack), eps=grid, n_images=n)
                if attack == Attack.PGD:
                    c["steps"] = steps
                self.bld.evaluate(f"eval-{attack}-{label}", c, [tid],
                                  n * len(grid) * (steps + 1), "curves")

    def transfer(self, seeded: dict[str, str]) -> None:
        n, ids = self.n_images, list(seeded.values())
        self.bld.evaluate("eval-transfer", TransferConfig(what="transfer", models=seeded,
                                                          eps=self.claim, steps=8, n_images=n),
                          ids, n * len(ids) * (9 + len(ids)), "transfer")
        if self.b.transfer_curves:
            self.bld.evaluate("eval-transfer-curves",
                              TransferCurvesConfig(what="transfer_curves", models=seeded,
                                                   eps=self.grid, steps=8, n_images=n),
                              ids, n * len(ids) * (9 + len(ids)) * len(self.grid), "transfer")

    def checks(self, main: dict[str, str]) -> None:
        b, n = self.b, self.n_images
        n_mask = min(b.masking_images or n, n)
        n_aa = min(b.aa_images, n)
        for kind in ("real", "complex"):
            tid, surrogate = main[f"{kind}-gr"], main[f"{kind}-none"]
            self.bld.evaluate(
                f"eval-masking-{kind}-gr",
                MaskingConfig(what="masking", model=tid, surrogate=surrogate, eps=self.claim,
                              steps=8, n_images=n_mask, nes_images=min(b.nes_images, n_mask),
                              nes_queries=b.nes_queries),
                [tid, surrogate], n_mask * 40 + min(b.nes_images, n_mask) * 8 * b.nes_queries,
                "checks")
            self.bld.evaluate(
                f"eval-autoattack-{kind}-gr",
                AutoAttackConfig(what="autoattack", model=tid, eps=self.claim, n_images=n_aa,
                                 version=b.aa_version, attacks=b.aa_attacks),
                [tid], n_aa * _aa_cost(b.aa_version, b.aa_attacks), "checks")
        self.bld.evaluate("eval-identity", IdentityConfig(what="identity",
                                                          model=main["complex-gr"], n_images=8),
                          [main["complex-gr"]], 1000, "checks")
        self.bld.evaluate("eval-sizes", SizesConfig(what="sizes", archs=self.archs,
                                                    dataset=self.dataset), [], 10, "sizes")

    def timing(self, main: dict[str, str]) -> None:
        """The training-time table: the paper's six nets timed in one job on one machine."""
        batches = self.b.timing_batches
        if not batches:
            return
        configs = {lab: self.bld.configs[main[lab]] for lab in TIMED_MODELS}
        cost = sum(_train_cost(c) for c in configs.values()) * batches * 2 * 64
        self.bld.evaluate("eval-timing", TimingConfig(what="timing", configs=configs,
                                                      batches=batches), [], cost, "timing")


def build_plan(dataset: str, budget: str, *, real_arch: str | None = None,
               complex_arch: str | None = None, n_images: int | None = None) -> dict[str, Any]:
    """The whole reproduction for one dataset and budget: settings and jobs, plain JSON data.

    `n_images` caps the test images of every evaluation (the budget's count by default; the
    training runs' own validation keeps the budget's), e.g. 1000 for a paper budget on a CPU.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}",
                        param="dataset")
    if budget not in BUDGETS:
        shown = [b for b, v in BUDGETS.items() if not v.hidden]
        raise UserError(f"unknown budget {budget!r}; choose from {', '.join(shown)}",
                        param="budget")
    s, b = DATASETS[dataset].settings, BUDGETS[budget]
    archs = {"real": real_arch or s.real_arch, "complex": complex_arch or s.complex_arch}
    _check_arch(archs["real"], "real_arch")
    _check_arch(archs["complex"], "complex_arch")
    if n_images is not None and (isinstance(n_images, bool) or not isinstance(n_images, int)
                                 or n_images < 1):
        raise UserError(f"n_images must be a whole number of test images >= 1, got {n_images!r}",
                        param="n_images")
    p = _Planner(dataset, b, archs, n_images)
    main = p.models()
    sweep = p.sweep()
    names = [chr(ord("A") + i) for i in range(len(b.seeds))]
    seeded = dict(zip(names, p.seeded(), strict=True))
    p.curves(main)
    p.transfer(seeded)
    p.checks(main)
    p.timing(main)
    plan = {
        "dataset": dataset, "budget": asdict(b), "settings": asdict(s), "archs": archs,
        "eps": p.grid, "claim_eps": p.claim, "n_images": p.n_images, "train_images": p.train_images,
        "epochs": p.run_epochs, "models": main, "sweep": sweep, "seeded": seeded,
        "jobs": p.bld.jobs,
    }
    plan = json.loads(json.dumps(plan))  # plain JSON types only (tuples become lists)
    check_plan(plan)
    _resolve_train_jobs(plan)
    return plan


def _resolve_train_jobs(plan: dict[str, Any]) -> None:
    """Every train job resolved into its full TrainConfig now, before any output directory is
    claimed: a net that does not fit the dataset is one line naming the reproduce flag."""
    from cvgr.train.config import TrainConfig

    for job in plan["jobs"]:
        if job["task"] != "train":
            continue
        try:
            TrainConfig.from_dict(dict(job["config"])).resolved()
        except UserError as e:
            if e.param != "arch":
                raise
            param = "complex_arch" if job["config"]["complex"] else "real_arch"
            raise UserError(str(e), param=param) from None


def _check_arch(name: str, param: str) -> None:
    from cvgr.models import resolve

    try:
        resolve(name)
    except ValueError as e:
        raise UserError(f"{param}: {e}", param=param) from None


def check_plan(plan: dict[str, Any]) -> None:
    """Ids unique, every dependency a known earlier job: a plan any executor can run in order."""
    seen: set[str] = set()
    for job in plan["jobs"]:
        if job["id"] in seen:
            raise ValueError(f"duplicate job id {job['id']!r}")
        if job["task"] not in ("train", "evaluate"):
            raise ValueError(f"job {job['id']!r}: unknown task {job.get('task')!r}")
        missing = [d for d in job["deps"] if d not in seen]
        if missing:
            raise ValueError(f"job {job['id']!r} depends on unknown or later jobs {missing}")
        if not (isinstance(job.get("cost"), int | float) and math.isfinite(job["cost"])):
            raise ValueError(f"job {job['id']!r}: cost must be a finite number")
        seen.add(job["id"])
