"""The authors' AutoAttack (the ``pyautoattack`` package), through its public API only.

The standard version is one call, `AutoAttack(model, norm=..., eps=..., version="standard",
seed=..., device=...).run_standard_evaluation(x, y, batch_size=...)`: APGD-CE (100 iterations,
1 restart), APGD-T (9 target classes), FAB-T (9 target classes), Square (5000 queries). A custom
list of their attacks goes through `version="custom"` and `attacks=`, with its settings set on
the attack objects as their README shows. The per-attack accuracies are what the call reports
on its `auto-attack` logger (:class:`Report`), and the warnings of its automatic checks (zero
gradients, randomness, ...) become the result's flags.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from cvgr.errors import UserError
from cvgr.evaluate.autoattack.common import AttackRun, fraction

__all__ = ["AuthorsAttacks", "Report", "require_autoattack"]

_NORMS = {"linf": "Linf", "l2": "L2"}
# The authors' AutoAttack reports its progress on the `auto-attack` logger (pyautoattack 0.2.0):
# one record per batch of each attack, and one per finished attack.
_LOGGER = "auto-attack"
_BATCH = re.compile(r"(?P<attack>[a-z-]+) - \d+/\d+ - (?P<fooled>\d+) out of (?P<size>\d+) "
                    r"successfully perturbed")
_AFTER = re.compile(r"robust accuracy after (?P<attack>[A-Z-]+): (?P<pct>[\d.]+)% "
                    r"\(total time (?P<time>[\d.]+) s\)")


def require_autoattack() -> Any:
    """Import the authors' AutoAttack (pyautoattack) or raise a one-line UserError."""
    try:
        import pyautoattack
    except ImportError:
        raise UserError("the standard AutoAttack needs the authors' implementation; install it "
                        "with `pip install cvgr[autoattack]` (package pyautoattack), or use "
                        "version='art'") from None
    return pyautoattack


class Report(logging.Handler):
    """What the authors' AutoAttack reports on its logger: the warnings of its automatic checks
    (zero gradients, randomness, ...), added to `flags`, and, per attack, the images it
    attacked and fooled."""

    def __init__(self, flags: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.flags = flags
        self.start()

    def start(self) -> None:
        """Forget the attack counts of an earlier call (the flags are kept)."""
        self.attacked: dict[str, int] = {}
        self.fooled: dict[str, int] = {}
        self.after: dict[str, tuple[float, float]] = {}  # attack -> (percent, total seconds)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            if msg not in self.flags:
                self.flags.append(msg)
        elif m := _BATCH.fullmatch(msg):
            name = m["attack"]
            self.attacked[name] = self.attacked.get(name, 0) + int(m["size"])
            self.fooled[name] = self.fooled.get(name, 0) + int(m["fooled"])
        elif m := _AFTER.fullmatch(msg):
            self.after[m["attack"].lower()] = (float(m["pct"]), float(m["time"]))


class AuthorsAttacks:
    """The calls of the authors' AutoAttack in one evaluation, each on the images `run` still
    counts as robust; :meth:`listening` captures their logger while the calls run."""

    def __init__(self, run: AttackRun) -> None:
        self.run = run
        self.report = Report(run.flags)

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Route the `auto-attack` logger (debug records too) to the report, and only there."""
        log = logging.getLogger(_LOGGER)
        state = (log.handlers, log.propagate, log.level)
        log.handlers, log.propagate = [self.report], False
        log.setLevel(logging.DEBUG)  # its per-attack accuracies are debug records
        try:
            yield
        finally:
            log.handlers, log.propagate = state[:2]
            log.setLevel(state[2])

    def step(self, segment: list[dict[str, Any]] | None) -> None:
        """One run_standard_evaluation on the images still robust (all images when it runs
        first, as RobustBench calls it); None is the standard version."""
        run = self.run
        first = not run.rows
        idx = torch.arange(len(run.x), device=run.x.device) if first \
            else run.robust.nonzero().squeeze(1)
        aa = self._build(segment)
        names = [str(a) for a in aa.attacks_to_run]
        before = int(run.robust.sum())
        self.report.start()
        unconfirmed = 0
        if run.eps > 0 and before:
            adv, y_adv = aa.run_standard_evaluation(run.x[idx].to(run.dev), run.y[idx].to(run.dev),
                                                    batch_size=run.batch_size)
            claimed = run.robust[idx] & (y_adv.to(run.y.device) != run.y[idx])
            unconfirmed = run.confirm(idx, adv.detach(), claimed)
        rows = _rows(aa, names, self.report, before, len(idx), len(run.x))
        if first and rows and rows[0]["attacked"] not in (0, before):
            run.flags.append(f"pyautoattack found {rows[0]['attacked']} images "
                             f"classified correctly, cvgr {before}")
        run.rows += rows
        if unconfirmed:
            run.flags.append(
                f"{unconfirmed} example(s) that pyautoattack counted as fooling the model do "
                "not, once checked (projected onto the eps-ball and [0, 1], the model asked "
                "again); those images count as robust")

    def _build(self, segment: list[dict[str, Any]] | None) -> Any:
        """The authors' AutoAttack: their standard version as they configure it, or a custom
        attack list with its settings on the attack objects, as their README shows."""
        from pyautoattack import AutoAttack

        run = self.run
        common = dict(norm=_NORMS[run.norm], eps=run.eps, seed=run.seed, device=run.dev)
        if segment is None:
            return AutoAttack(run.model, version="standard", **common)
        aa = AutoAttack(run.model, version="custom", attacks=[s["attack"] for s in segment],
                        **common)
        for spec in segment:
            _configure(aa, spec)
        return aa


def _configure(aa: Any, spec: dict[str, Any]) -> None:
    """A custom spec's settings on the authors' attack object that runs it."""
    name = spec["attack"]
    if name.startswith("apgd"):
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

        # a new object: APGD derives its step-size schedule from n_iter when it is built
        old = aa.apgd_targeted if name == "apgd-t" else aa.apgd
        cls = APGDAttack_targeted if name == "apgd-t" else APGDAttack
        new = cls(aa.model, n_restarts=spec["restarts"], n_iter=spec["steps"], verbose=False,
                   eps=aa.epsilon, norm=aa.norm, eot_iter=old.eot_iter, rho=old.thr_decr,
                   seed=aa.seed, device=aa.device, logger=aa.logger)
        if name == "apgd-t":
            new.n_target_classes = spec["targets"]
            aa.apgd_targeted = new
        else:
            aa.apgd = new
    elif name.startswith("fab"):
        aa.fab.n_iter = spec["steps"]
        if name == "fab-t":
            aa.fab.n_target_classes = spec["targets"]
        else:
            aa.fab.n_restarts = spec["restarts"]
    else:
        aa.square.n_queries, aa.square.p_init = spec["queries"], spec["p_init"]


def _settings(aa: Any, name: str) -> dict[str, Any]:
    """The settings an attack of the authors' AutoAttack object runs with."""
    if name.startswith("apgd"):
        atk = aa.apgd_targeted if name == "apgd-t" else aa.apgd
        out = {"n_iter": atk.n_iter, "n_restarts": atk.n_restarts, "rho": atk.thr_decr,
               "eot_iter": atk.eot_iter, "loss": {"apgd-ce": "ce", "apgd-dlr": "dlr",
                                                  "apgd-t": "dlr-targeted"}[name]}
        if name == "apgd-t":
            out["n_target_classes"] = atk.n_target_classes
        return out
    if name.startswith("fab"):
        out = {"n_iter": aa.fab.n_iter, "targeted": name == "fab-t",
               "n_restarts": 1 if name == "fab-t" else aa.fab.n_restarts,  # as the run sets it
               "alpha_max": aa.fab.alpha_max, "eta": aa.fab.eta, "beta": aa.fab.beta}
        if name == "fab-t":
            out["n_target_classes"] = aa.fab.n_target_classes
        return out
    return {"n_queries": aa.square.n_queries, "p_init": aa.square.p_init,
            "n_restarts": aa.square.n_restarts}


def _rows(aa: Any, names: list[str], report: Report, robust: int, given: int,
          n: int) -> list[dict[str, Any]]:
    """The rows of one call on `given` images (`robust` of them still robust), from what the
    authors' AutoAttack reported: the images each attack ran on and fooled, the robust accuracy
    after it and its time. An attack it skipped (no image left) attacked none."""
    rows, clock = [], 0.0
    for name in names:
        attacked, total = 0, clock
        if name in report.after:
            pct, total = report.after[name]
            attacked = report.attacked.get(name, 0)
            robust = attacked - report.fooled.get(name, 0)
            if abs(pct - 100 * robust / given) > 0.0051:  # it prints 2 decimals of a percent
                raise RuntimeError(f"cannot read pyautoattack's report: by its batches {name} "
                                   f"left {robust} of {given} images, by its summary {pct}%")
        rows.append({"attack": name, "library": "autoattack", "settings": _settings(aa, name),
                     "attacked": attacked, "robust_accuracy": fraction(robust, n),
                     "seconds": round(total - clock, 3)})
        clock = total
    return rows
