"""What a training run is: one dataclass, per-dataset recipes for the unset fields, validation.

A `TrainConfig` with None fields is a request; `resolved()` fills them from the dataset's recipe
(docs/method.md, section 6) and checks every value, so two runs are the same run exactly when their
resolved configs are equal. The device and the data directory are not part of a run's
identity: they change where it runs, not what it computes (up to floating-point kernels).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

from cvgr.data.specs import Recipe
from cvgr.errors import UserError
from cvgr.names import AdvKind, GRMode, defense_name, is_one_of

__all__ = ["Recipe", "TrainConfig", "need"]

T = TypeVar("T")


RENAMED_FIELDS = {"limit_train": "train_images", "limit_test": "test_images"}
"""Earlier names of fields, as `TrainConfig.from_dict` reads them."""


def need(value: T | None) -> T:
    """A field of a resolved config (recipe values are never None after `resolved()`)."""
    if value is None:
        raise RuntimeError("a recipe value is unset: call TrainConfig.resolved() first")
    return value

PGD_STEPS = 4  # the paper's PGD adversarial training (PGD-4; it also trains PGD-8)
TRADES_STEPS = 10  # TRADES' published inner steps
# Fields newer than the shipped zoo, and their "off" value: to_dict() leaves them out when off.
OPTIONAL_OFF: dict[str, Any] = {"trades": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result. None means "the dataset's recipe value".

    Defense: `beta` > 0 adds gradient regularization (penalty q-norm, `gr_mode`, `fd_h`);
    `noise` > 0 adds Gaussian noise to training images (with GR: the paper's GR + noise);
    `adv_eps` > 0 replaces each batch by FGSM or `adv_steps`-step PGD examples (with GR: the
    penalty is taken on the adversarial batch's loss); `trades` > 0 (with `adv_eps` > 0)
    trains with TRADES instead: CE at the clean batch + trades * KL to an `adv_steps`-step
    KL-maximising point. `adv_steps` None: 4 for PGD (the paper's), 10 for TRADES (published).
    """

    dataset: str
    arch: str
    complex: bool = False
    # defense
    beta: float = 0.0
    q: int = 1
    gr_mode: str = str(GRMode.EXACT)
    fd_h: float | None = None
    noise: float = 0.0
    adv_eps: float = 0.0
    adv_steps: int | None = None
    adv_kind: str = str(AdvKind.PGD)
    trades: float = 0.0
    # optimiser and schedule (None: the dataset's recipe)
    epochs: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    milestones: tuple[int, ...] | None = None
    lr_gamma: float = 0.2
    # reproducibility, size, logging
    seed: int = 0
    train_images: int | None = None
    test_images: int | None = None
    cos_batches: int = 1

    # -- identity ------------------------------------------------------------------------------

    def resolved(self) -> TrainConfig:
        """Recipe values filled in, names canonical, every field checked (UserError if bad)."""
        from cvgr.data import DATASETS
        from cvgr.models import resolve

        if self.dataset not in DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; choose from "
                            f"{', '.join(sorted(DATASETS))}", param="dataset")
        dataset = DATASETS[self.dataset]
        try:
            spec = resolve(self.arch)
        except ValueError as e:
            raise UserError(str(e), param="arch") from None
        shape = tuple(dataset.input_shape)
        if tuple(spec.input_shape) != shape:
            raise UserError(f"{spec.reference_name} takes {spec.input_shape} images but "
                            f"{self.dataset} has {shape}; pick an architecture for this dataset",
                            param="arch")
        r = dataset.recipe
        epochs = _int(self.epochs if self.epochs is not None else r.epochs, "epochs", 1)
        milestones = (r.milestones(epochs) if self.milestones is None
                      else sorted(_int(m, "milestones", 1) for m in self.milestones))
        cfg = replace(
            self,
            arch=spec.name,
            complex=bool(self.complex),
            epochs=epochs,
            lr=_pos(self.lr if self.lr is not None else r.lr, "lr"),
            momentum=_float(self.momentum if self.momentum is not None else r.momentum,
                            "momentum", 0.0, 1.0, hi_open=True),
            weight_decay=_float(self.weight_decay if self.weight_decay is not None
                                else r.weight_decay, "weight_decay", 0.0),
            batch_size=_int(self.batch_size if self.batch_size is not None else r.batch_size,
                            "batch_size", 1),
            milestones=tuple(milestones),
            lr_gamma=_pos(self.lr_gamma, "lr_gamma"),
            beta=_float(self.beta, "beta", 0.0),
            noise=_float(self.noise, "noise", 0.0),
            adv_eps=_float(self.adv_eps, "adv_eps", 0.0, 1.0),
            adv_steps=_int(self.adv_steps if self.adv_steps is not None
                           else self._default_steps(), "adv_steps", 1),
            trades=_float(self.trades, "trades", 0.0),
            fd_h=None if self.fd_h is None else _pos(self.fd_h, "fd_h"),
            seed=_int(self.seed, "seed", 0),
            train_images=None if self.train_images is None else _int(self.train_images,
                                                                   "train_images", 1),
            test_images=None if self.test_images is None else _int(self.test_images,
                                                                 "test_images", 1),
            cos_batches=_int(self.cos_batches, "cos_batches", 0),
        )
        cfg._check_choices()
        return cfg._canonical()

    def _default_steps(self) -> int:
        """adv_steps when unset: TRADES' published 10, else the paper's PGD-4."""
        trades = self.trades
        return TRADES_STEPS if isinstance(trades, int | float) and trades > 0 else PGD_STEPS

    def _check_choices(self) -> None:
        if self.q not in (1, 2):
            raise UserError(f"q must be 1 or 2, got {self.q!r}", param="q")
        if not is_one_of(self.gr_mode, GRMode):
            raise UserError(f"unknown gr_mode {self.gr_mode!r}; choose from "
                            f"{', '.join(GRMode)}", param="gr_mode")
        if not is_one_of(self.adv_kind, AdvKind):
            raise UserError(f"unknown adv_kind {self.adv_kind!r}; choose from "
                            f"{', '.join(AdvKind)}", param="adv_kind")
        self._check_trades()
        if self.milestones and self.epochs and self.milestones[-1] > self.epochs:
            raise UserError(f"milestone {self.milestones[-1]} is past the last epoch "
                            f"({self.epochs}); give milestones within 1..epochs",
                            param="milestones")

    def _check_trades(self) -> None:
        if not self.trades > 0:
            return
        if self.adv_eps == 0:
            raise UserError("trades needs adv_eps > 0: the radius of its inner KL "
                            "maximisation (the paper's eps, e.g. 0.1 for Fashion-MNIST)",
                            param="trades")
        if self.adv_kind != AdvKind.PGD:
            raise UserError(f"trades makes its own PGD points; adv_kind {self.adv_kind!r} "
                            "does not apply (leave it pgd)", param="adv_kind")
        if self.beta > 0:
            raise UserError("trades with GR (beta > 0) is not a defined combination; train "
                            "GR with PGD adversarial training (adv_eps, adv_steps) instead",
                            param="trades")

    def _canonical(self) -> TrainConfig:
        """Settings that mean nothing for this defense reset, so identity is canonical."""
        cfg = replace(self, gr_mode=str(self.gr_mode), adv_kind=str(self.adv_kind))
        if cfg.adv_kind == AdvKind.FGSM:
            cfg = replace(cfg, adv_steps=1)
        if cfg.beta == 0:  # GR settings mean nothing without GR
            cfg = replace(cfg, q=1, gr_mode=str(GRMode.EXACT), fd_h=None)
        if cfg.adv_eps == 0:
            cfg = replace(cfg, adv_steps=PGD_STEPS, adv_kind=str(AdvKind.PGD))
        return cfg

    @property
    def defense(self) -> str:
        """Short name: none, gr, noise, gr+noise, pgd4, fgsm, pgd8+gr, ... (cvgr.names)."""
        return defense_name(beta=self.beta, noise=self.noise, adv_eps=self.adv_eps,
                            adv_steps=self.adv_steps if self.adv_steps is not None
                            else self._default_steps(), adv_kind=self.adv_kind,
                            gr_mode=self.gr_mode, trades=self.trades)

    def defense_settings(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.defense}
        if self.beta > 0:
            d.update(beta=self.beta, q=self.q, gr_mode=self.gr_mode, fd_h=self.fd_h)
        if self.noise > 0:
            d.update(noise=self.noise)
        if self.adv_eps > 0:
            d.update(adv_eps=self.adv_eps, adv_steps=self.adv_steps, adv_kind=self.adv_kind)
        if self.trades > 0:
            d.update(trades=self.trades)
        return d

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based `epoch`: x lr_gamma at each milestone already passed."""
        assert self.lr is not None and self.milestones is not None, "resolve() first"
        return self.lr * self.lr_gamma ** sum(1 for m in self.milestones if epoch >= m)

    # -- (de)serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values. Fields added after the first zoo was shipped are
        left out while off (`OPTIONAL_OFF`), so every earlier run's config.json, record and
        command line stay exactly what they were."""
        d = asdict(self)
        if d["milestones"] is not None:
            d["milestones"] = list(d["milestones"])
        for k, off in OPTIONAL_OFF.items():
            if d.get(k) == off:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        # the names an earlier cvgr gave two fields: records written then (the shipped
        # zoo's weights) still carry them
        d = {RENAMED_FIELDS.get(k, k): v for k, v in d.items()}
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown training setting(s) {sorted(unknown)}; "
                            "this config was written by another cvgr version")
        d = dict(d)
        if d.get("milestones") is not None:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def differences(self, other: TrainConfig) -> list[str]:
        """'field X there, Y asked' for every field where `other` (stored) differs from self."""
        a, b = asdict(self), asdict(other)  # every field, also those to_dict() leaves out
        return [f"{k} {b[k]!r} there, {a[k]!r} asked" for k in a if a[k] != b[k]]

    def argv(self) -> list[str]:
        """A `cvgr train` command line (without --out) that makes this resolved config."""
        out = ["--dataset", self.dataset, "--arch", self.arch]
        if self.complex:
            out.append("--complex")
        for k, v in self.to_dict().items():
            if k in ("dataset", "arch", "complex") or v is None:
                continue
            if k == "milestones":
                v = ",".join(map(str, v)) if v else "none"
            out += ["--" + k.replace("_", "-"), str(v)]
        return out


def _float(v: Any, name: str, lo: float, hi: float = math.inf, hi_open: bool = False) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {v!r}", param=name) from None
    if not math.isfinite(x) or x < lo or x > hi or (hi_open and x == hi):
        rng = f"[{lo:g}, {hi:g}{')' if hi_open else ']'}" if math.isfinite(hi) else f">= {lo:g}"
        raise UserError(f"{name} must be {rng}, got {v!r}", param=name)
    return x


def _pos(v: Any, name: str) -> float:
    """A finite number > 0 (the message says so for a negative value too, not only for 0)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {v!r}", param=name) from None
    if not (math.isfinite(x) and x > 0):
        raise UserError(f"{name} must be a finite number > 0, got {v!r}", param=name)
    return x


def _int(v: Any, name: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise UserError(f"{name} must be an integer, got {v!r}", param=name)
    if v < lo:
        raise UserError(f"{name} must be >= {lo}, got {v!r}", param=name)
    return int(v)
