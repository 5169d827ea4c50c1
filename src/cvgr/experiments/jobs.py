"""The types of the reproduction's plain-JSON data: jobs and evaluation configs.

They are TypedDicts, so a job still *is* a dict that `json.dumps` writes unchanged (plan.json
and evals/<id>.json keep their format); the types document and check the keys.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = ["AutoAttackConfig", "CurveConfig", "EvalConfig", "EvalJob", "IdentityConfig", "Job",
           "MaskingConfig", "SizesConfig", "TimingConfig", "TrainJob", "TransferConfig",
           "TransferCurvesConfig"]


class CurveConfig(TypedDict):
    """Accuracy of `model` under `attack` at every eps, on the first `n` test images."""

    what: Literal["curve"]
    model: str  # train job id
    attack: str  # cvgr.names.Attack
    eps: list[float]
    n_images: int
    steps: NotRequired[int]  # PGD only


class TransferConfig(TypedDict):
    """PGD(`steps`) crafted on each of `models` (name -> train job id), tried on all."""

    what: Literal["transfer"]
    models: dict[str, str]
    eps: float
    steps: int
    n_images: int


class TransferCurvesConfig(TypedDict):
    """The transfer matrix of `models` at every eps of `eps` (seed Figures 2-3: white-box and
    transferred PGD(`steps`) accuracy of each net against eps)."""

    what: Literal["transfer_curves"]
    models: dict[str, str]
    eps: list[float]
    steps: int
    n_images: int


class MaskingConfig(TypedDict):
    """The gradient-masking checks of `model`, with `surrogate` as the transfer source."""

    what: Literal["masking"]
    model: str
    surrogate: str
    eps: float
    steps: int
    n_images: int
    nes_images: int
    nes_queries: int


class AutoAttackConfig(TypedDict):
    """An AutoAttack evaluation (version named in the config) beside PGD(8) on one image set."""

    what: Literal["autoattack"]
    model: str
    eps: float
    n_images: int
    version: str  # "standard" (the authors'), "art" or "custom"
    attacks: str | None  # the attack list of a custom version


class IdentityConfig(TypedDict):
    """The unit-modulus identity on `model`'s trained complex layers, at `n` inputs."""

    what: Literal["identity"]
    model: str
    n_images: int


class SizesConfig(TypedDict):
    """Parameters and MACs of each architecture in `archs` (kind -> name)."""

    what: Literal["sizes"]
    archs: dict[str, str]
    dataset: str


class TimingConfig(TypedDict):
    """Seconds per epoch of each of `configs` (label -> TrainConfig fields), timed together in
    one process over `batches` batches each (`cvgr.train.timing.time_epochs`). It names no
    train job: it trains its own few batches."""

    what: Literal["timing"]
    configs: dict[str, dict[str, Any]]
    batches: int


EvalConfig = (CurveConfig | TransferConfig | MaskingConfig | AutoAttackConfig | IdentityConfig
              | SizesConfig | TimingConfig | TransferCurvesConfig)


class TrainJob(TypedDict):
    """Train `config` (TrainConfig fields) into ``runs/<id>/``."""

    id: str
    task: Literal["train"]
    config: dict[str, Any]
    deps: list[str]
    cost: float
    group: str


class EvalJob(TypedDict):
    """Evaluate `config` into ``evals/<id>.json`` once the train jobs in `deps` finished."""

    id: str
    task: Literal["evaluate"]
    config: EvalConfig
    deps: list[str]
    cost: float
    group: str


Job = TrainJob | EvalJob
