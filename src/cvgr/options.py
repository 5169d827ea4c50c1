"""How work runs, as one object: `cvgr.train.train` takes it, and every job of `reproduce`
carries it through the executor to `execute` and `run_evaluation` (frozen and picklable: a Ray
task or a spawned process receives it as is). It imports nothing of cvgr, so any layer may use
it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """How a job runs (not what it computes: that is the job's config).

    device: "cpu", "cuda", "cuda:N", "mps" or None (the default device of the machine that
        runs the job, chosen there by `cvgr.devices.default_device`).
    data_root: where datasets are looked for first (None: the usual places).
    progress: inner progress bars (per epoch / per attack).
    quiet: no messages from inside a job (several jobs share one terminal).
    deterministic: deterministic PyTorch kernels (`cvgr.devices.deterministic`).
    threads: PyTorch threads inside the job (None: leave PyTorch's setting).
    gr_step: how training jobs run the GR step (`cvgr.defenses.gr_step.GR_STEPS`).
    use_zoo: take a shipped zoo model (and its stored AutoAttack) where a train job's
        resolved config is identical to a zoo entry's, instead of training it again
        (`cvgr.zoo.adopt`); False: train everything (``--retrain``).
    executor, jobs: set by the executor that runs the job ("local" or "ray", and how many
        jobs run at once), recorded with each run: on CPU the thread count, which these
        decide, changes the last bits of the weights (docs/cluster.md).
    """

    device: str | None = None
    data_root: str | None = None
    progress: bool = False
    quiet: bool = False
    deterministic: bool = False
    threads: int | None = None
    gr_step: str = "auto"
    use_zoo: bool = True
    executor: str | None = None
    jobs: int | None = None

    @classmethod
    def for_terminal(cls, quiet: bool, **fields: Any) -> RunOptions:
        """The command line's one setting, `--quiet`: no messages and no progress bars."""
        return cls(progress=not quiet, quiet=quiet, **fields)

    def replace(self, **changes: Any) -> RunOptions:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
