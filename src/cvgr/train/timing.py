"""Seconds per training epoch of several configurations, measured together on one machine.

The paper's cost claim compares training times of six nets (real: none, GR, PGD-4 AT, PGD-8
AT; complex: none, GR). Whole runs on shared hardware are not comparable, so this times
`train_epoch` itself (data, augmentation, defense, SGD step) for a fixed number of batches per
configuration, the configurations interleaved so that a burst of other load hits one repeat
of each, keeps the fastest repeat, and extrapolates a full epoch plus validation on the test
set: a few hundred batches per row give the ratios.

    rows = time_epochs({"real-none": cfg_a, "complex-gr": cfg_b}, batches=300)
    rows["complex-gr"]["seconds_per_epoch"] / rows["real-none"]["seconds_per_epoch"]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from cvgr.errors import UserError
from cvgr.train.config import TrainConfig
from cvgr.train.loop import TrainingDiverged

__all__ = ["CLOCKS", "WARMUP_BATCHES", "time_epochs"]

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}

WARMUP_BATCHES = 10
"""Batches run before timing (and before which a traced or compiled GR step is built)."""


class _Row:
    """One configuration, set up once and timed repeatedly."""

    def __init__(self, label: str, cfg: TrainConfig, batches: int, device: torch.device,
                 data_root: str | None, gr_step: str,
                 log: Callable[[str], None] | None) -> None:
        from cvgr.data import Loader, channel_stats, get_spec
        from cvgr.defenses.gr_step import resolve_gr_step
        from cvgr.models import create_model
        from cvgr.train.config import need
        from cvgr.train.loop import VAL_BATCH, make_gr_step, train_epoch, validate

        self.cfg = cfg.resolved()
        bs = need(self.cfg.batch_size)
        self.loader = Loader(self.cfg.dataset, "train", bs, train=True, seed=self.cfg.seed,
                             n_images=bs * batches, device=device, data_root=data_root)
        self.val = Loader(self.cfg.dataset, "test", VAL_BATCH, train=False,
                          n_images=self.cfg.test_images, device=device, data_root=data_root)
        n_train = get_spec(self.cfg.dataset).train_size
        self.batches_per_epoch = math.ceil(min(self.cfg.train_images or n_train, n_train) / bs)
        # the step `cvgr train` would run for this configuration's whole run on this device
        resolved = resolve_gr_step(gr_step, self.batches_per_epoch, need(self.cfg.epochs), device)
        self.normalize = None  # as `cvgr.train.train` builds the model
        if get_spec(self.cfg.dataset).normalize_real and not self.cfg.complex:
            mean, std = channel_stats(self.cfg.dataset, data_root)
            self.normalize = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self.label, self.device, self.log = label, device, log
        torch.manual_seed(self.cfg.seed)
        self.model = create_model(self.cfg.arch, complex=self.cfg.complex,
                                  normalize=self.normalize).to(device)
        self.start = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.opt = self._optimizer()
        t = time.perf_counter()
        self.step = make_gr_step(self.model, self.cfg, resolved)
        self.gr_step = (self.step.gr_step if self.step else "eager") if self.cfg.beta > 0 else None
        self._train_epoch, self._validate = train_epoch, validate
        warm = Loader(self.cfg.dataset, "train", bs, train=True, seed=self.cfg.seed,
                      n_images=bs * WARMUP_BATCHES, device=device, data_root=data_root)
        self._epoch(warm, 0)  # builds (traces, compiles) the GR step before any timing
        if self.step is not None and log is not None:
            log(f"  {label}: set-up and warm-up (trace/compile) "
                f"{time.perf_counter() - t:.1f} s wall")
        self.train_s: list[float] = []
        self.val_s: list[float] = []

    def _optimizer(self) -> torch.optim.Optimizer:
        from cvgr.train.config import need

        return torch.optim.SGD(self.model.parameters(), lr=need(self.cfg.lr),
                               momentum=need(self.cfg.momentum),
                               weight_decay=need(self.cfg.weight_decay))

    def _epoch(self, loader: Any, epoch: int) -> None:
        """One pass; weights that diverge are put back to their start and the pass run again
        (this measures time, not learning; the GR step keeps its graph)."""
        try:
            self._train_epoch(self.model, self.opt, loader, epoch, self.cfg, gr_step=self.step)
        except TrainingDiverged:
            with torch.no_grad():
                for k, v in self.model.state_dict().items():
                    v.copy_(self.start[k])
            self.opt = self._optimizer()
            self._train_epoch(self.model, self.opt, loader, epoch, self.cfg, gr_step=self.step)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time_once(self, repeat: int, clock: Callable[[], float]) -> None:
        self._sync()
        t = clock()
        self._epoch(self.loader, repeat + 1)
        self._sync()
        self.train_s.append((clock() - t) / len(self.loader))
        t = clock()
        self._validate(self.model, self.val)
        self._sync()
        self.val_s.append(clock() - t)
        if self.log is not None:
            self.log(f"  {self.label:<22} {1000 * self.train_s[-1]:8.2f} ms/batch  "
                     f"val {self.val_s[-1]:6.2f} s")

    def result(self) -> dict[str, Any]:
        per_batch, val = min(self.train_s), min(self.val_s)  # other load only adds time
        return {"seconds_per_batch": per_batch, "validation_seconds": val,
                "batches_per_epoch": self.batches_per_epoch,
                "seconds_per_epoch": per_batch * self.batches_per_epoch + val,
                "gr_step": self.gr_step}


def time_epochs(configs: Mapping[str, TrainConfig], batches: int, *, repeats: int = 2,
                device: str | torch.device = "cpu", data_root: str | os.PathLike | None = None,
                gr_step: str | Mapping[str, str] = "auto", clock: str = "wall",
                log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Estimated seconds per epoch (training + validation) of each configuration.

    Args:
        configs: label -> TrainConfig; all are timed in this one call.
        batches: batches timed per configuration and repeat (a few hundred give the ratios).
        repeats: timings per configuration, interleaved; the fastest is kept.
        device: where to train.
        data_root: where the datasets are looked for first.
        gr_step: how GR configurations run their step ("auto": what `cvgr train` picks for
            the configuration's whole run on `device`), the same for all, or label -> step
            per configuration (a label it does not name takes "auto").
        clock: "wall" (elapsed time) or "cpu" (this process's CPU time: with one PyTorch
            thread on a CPU it is immune to other programs sharing the cores).
        log: called with a line per configuration set up with a traced or compiled GR
            step (its set-up seconds) and per timing (ms per batch, validation seconds).

    Returns:
        label -> {"seconds_per_batch", "validation_seconds", "batches_per_epoch",
        "seconds_per_epoch", "gr_step"}.
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise UserError(f"batches must be a whole number >= 1, got {batches!r}",
                        param="batches")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"repeats must be a whole number >= 1, got {repeats!r}",
                        param="repeats")
    if clock not in CLOCKS:
        raise UserError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}",
                        param="clock")
    dev = torch.device(device)
    if clock == "cpu" and dev.type != "cpu":
        raise UserError("clock 'cpu' times CPU work only; use 'wall' on a GPU", param="clock")
    root = None if data_root is None else str(data_root)
    if not isinstance(gr_step, str) and set(gr_step) - set(configs):
        raise UserError(f"gr_step names no configuration: {sorted(set(gr_step) - set(configs))}",
                        param="gr_step")
    steps = {label: gr_step if isinstance(gr_step, str) else gr_step.get(label, "auto")
             for label in configs}
    rows = {label: _Row(label, cfg, batches, dev, root, steps[label], log)
            for label, cfg in configs.items()}
    for r in range(repeats):  # interleaved: a burst of load hits one repeat of each row
        for row in rows.values():
            row.time_once(r, CLOCKS[clock])
    out = {label: row.result() for label, row in rows.items()}
    bad = [k for k, v in out.items() if not math.isfinite(v["seconds_per_epoch"])]
    if bad:
        raise RuntimeError(f"timing of {', '.join(bad)} is not finite")
    return out
