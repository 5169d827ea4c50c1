"""The one training loop, for every defense.

Per batch: optional Gaussian noise, optional adversarial replacement (FGSM / PGD), then
plain cross-entropy, the gradient-regularized objective or TRADES, one SGD step. GR + noise
(the paper's Fashion-MNIST setting) is simply both switches on: the penalty is taken at the
noisy images; GR + PGD AT likewise takes the penalty on the adversarial batch's loss. TRADES
keeps the clean batch and adds its KL term at its own inner-maximisation point.

Speed: nothing in the batch loop waits for the device. Per-batch losses stay on the device and
are looked at every `CHECK_EVERY` batches (non-finite check, progress-bar text) and at the end
of the epoch. The cosine between the CE gradient and the full objective's gradient costs one
extra backward pass of CE, so it is measured on the first `cos_batches` batches of each epoch
only (default 1) and averaged.

Determinism: every random draw in epoch e (data order and augmentation, noise, attack starts)
is seeded from (seed, e), so a resumed run continues exactly where the interrupted one was.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.devices import model_device, resolve_device
from cvgr.errors import RunError, UserError
from cvgr.options import RunOptions
from cvgr.rng import TRAINER_STREAM, epoch_seed
from cvgr.train.config import TrainConfig, need
from cvgr.train.rundir import RunDir
from cvgr.train.step import train_step

if TYPE_CHECKING:
    from cvgr.defenses.gr_step import GRStep

__all__ = ["CHECK_EVERY", "TrainingDiverged", "train", "validate", "train_epoch"]

CHECK_EVERY = 50
VAL_BATCH = 500


RETRY = ("training stopped and the last good checkpoint kept; a run's settings are "
         "fixed, so retry with a lower lr (or beta) as a new run in another output directory")


class TrainingDiverged(RunError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""


def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = False,
          options: RunOptions | None = None, *,
          callback: Callable[[dict[str, Any]], None] | None = None,
          **changes: Any) -> dict[str, Any]:
    """Train `config` into run directory `out_dir`; return the final epoch's metrics.

    How it runs is one :class:`~cvgr.options.RunOptions` (default: progress bars and
    messages, the default device); keywords named like its fields (``device``, ``data_root``,
    ``progress``, ``quiet``, ``gr_step``, ``executor``, ``jobs``) change single fields, so
    ``train(cfg, out, device="cpu", quiet=True)`` works as well.

    A directory that already holds this finished run is not retrained: its stored metrics are
    returned at once. `resume` continues an interrupted run. `callback(metrics)` is called
    after each epoch's checkpoint is written (raise from it to stop the run). `gr_step`
    ("auto", "eager", "traced" or "compiled") picks how the GR step runs
    (:mod:`cvgr.defenses.gr_step`; same objective; "auto", the default, is decided by
    :func:`~cvgr.defenses.gr_step.resolve_gr_step` from the run's length and device; the fd mode
    and BatchNorm models always run eager). config.json records the step that runs.
    `executor` and `jobs` ("local" or "ray", and N; set by `cvgr reproduce`'s executors) are
    recorded in config.json's environment with PyTorch's thread count: on CPU
    the thread count decides the last bits of the weights (docs/cluster.md).
    """
    from cvgr.defenses.gr_step import resolve_gr_step

    opts = (options or RunOptions(progress=True)).replace(**changes)
    gr_step, progress, quiet = opts.gr_step, opts.progress, opts.quiet
    resolve_gr_step(gr_step, 0)  # an unknown GR step fails before any data is read
    cfg = config.resolved()
    run = RunDir(out_dir)
    done_metrics = run.finished_metrics(cfg)
    if done_metrics is not None:
        return done_metrics

    from cvgr.io import check_output_dir, locked_dir

    dev = resolve_device(opts.device)
    check_output_dir(out_dir, "out")  # before reading data: a read-only or bad --out fails now
    data_root = None if opts.data_root is None else str(opts.data_root)
    # Data first: a missing dataset is reported before anything is written.
    train_loader, val_loader, normalize = _data(cfg, dev, data_root)
    resolved = resolve_gr_step(gr_step, len(train_loader), need(cfg.epochs), dev)
    environment = _environment(cfg, dev, data_root, opts)
    run.check(cfg, resume)  # refuse a foreign directory before creating anything in it
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    # One process per run directory: a second one is refused, saying who holds it.
    with locked_dir(run.path, "out"), torch.random.fork_rng(devices=cuda):
        # The caller's global RNG state is left as it was.
        model, fast = _model(cfg, normalize, dev, resolved)
        # how the GR step runs: the fd mode and BatchNorm models take the eager step whatever
        # the GR step asked for
        environment["gr_step"] = (fast.gr_step if fast else "eager") if cfg.beta > 0 else None
        done = run.prepare(cfg, resume, environment)
        return _train(cfg, run, done, model, fast, train_loader, val_loader, normalize,
                      progress, quiet, callback)


def _data(cfg: TrainConfig, dev: torch.device,
          data_root: str | None) -> tuple[Any, Any, tuple | None]:
    """The run's training and validation loaders, and the input normalisation of a real net
    on a dataset that normalises real inputs ((mean, std) per channel; None otherwise)."""
    from cvgr.data import Loader, channel_stats, get_spec

    train_loader = Loader(cfg.dataset, "train", need(cfg.batch_size), train=True, seed=cfg.seed,
                          n_images=cfg.train_images, device=dev, data_root=data_root)
    val_loader = Loader(cfg.dataset, "test", VAL_BATCH, train=False, seed=cfg.seed,
                        n_images=cfg.test_images, device=dev, data_root=data_root)
    normalize = None
    if get_spec(cfg.dataset).normalize_real and not cfg.complex:
        mean, std = channel_stats(cfg.dataset, data_root)
        normalize = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
    return train_loader, val_loader, normalize


def _environment(cfg: TrainConfig, dev: torch.device, data_root: str | None,
                 opts: RunOptions) -> dict[str, Any]:
    """Where and how the run runs, as config.json records it (the GR step is added once
    built)."""
    from cvgr.data import locate
    from cvgr.devices import describe_hardware

    return {"device": str(dev), "hardware": describe_hardware(dev, labelled=True),
            "data_root": data_root,
            "data_dir": str(locate(cfg.dataset, data_root)),  # where the files were read
            "torch_threads": torch.get_num_threads(),
            "executor": opts.executor, "jobs": opts.jobs}


def _model(cfg: TrainConfig, normalize: tuple | None, dev: torch.device,
           resolved: str) -> tuple[nn.Module, GRStep | None]:
    """The run's freshly initialised model (seeded by `cfg.seed`) and its GR step of `resolved`
    (None: eager), traced once per batch shape and reused every epoch."""
    from cvgr.models import create_model

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, complex=cfg.complex, normalize=normalize).to(dev)
    return model, make_gr_step(model, cfg, resolved)


def _record(cfg: TrainConfig, normalize: tuple | None,
            history: list[dict[str, Any]]) -> dict[str, Any]:
    """The metadata stored with model.safetensors after `history`'s epochs."""
    return {
        "arch": cfg.arch, "complex": cfg.complex,
        "normalize": [list(normalize[0]), list(normalize[1])] if normalize else None,
        "dataset": cfg.dataset, "defense": cfg.defense_settings(), "seed": cfg.seed,
        "epochs": cfg.epochs, "epochs_completed": len(history),
        "finished": len(history) == cfg.epochs,
        "metrics": history[-1] if history else {}, "config": cfg.to_dict(),
    }


def _start(cfg: TrainConfig, run: RunDir, done: int, model: nn.Module,
           opt: torch.optim.Optimizer, normalize: tuple | None,
           quiet: bool) -> tuple[int, list[dict[str, Any]]]:
    """Set up the run directory before the first epoch to train: a resumed run (`done` > 0)
    loads its state and rewrites its metrics and model; a new one stores its initial state
    and an empty metrics file. Returns (epochs done, their metrics)."""
    history: list[dict[str, Any]] = []
    if done:
        done, history = run.load_state(model, opt, cfg)
        run.write_metrics(history)
        run.save_model(model, _record(cfg, normalize, history))
        if not quiet and done < need(cfg.epochs):
            _progress.note(f"resuming {run.path} after epoch {done}/{cfg.epochs}")
    else:  # no model.safetensors before an epoch is done: untrained weights are no model
        run.save_state(model, opt, cfg, 0, history)
        run.write_metrics(history)
    return done, history


def _train(cfg: TrainConfig, run: RunDir, done: int, model: nn.Module, fast: GRStep | None,
           train_loader: Any, val_loader: Any, normalize: tuple | None, progress: bool,
           quiet: bool, callback: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    opt = torch.optim.SGD(model.parameters(), lr=need(cfg.lr), momentum=need(cfg.momentum),
                          weight_decay=need(cfg.weight_decay))

    done, history = _start(cfg, run, done, model, opt, normalize, quiet)
    for epoch in range(done, need(cfg.epochs)):
        lr = cfg.lr_at(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        stats = train_epoch(model, opt, train_loader, epoch, cfg, progress=progress,
                            gr_step=fast)
        t1 = time.perf_counter()
        val = validate(model, val_loader)
        row = {"epoch": epoch + 1, **stats, **val, "lr": lr,
               "train_seconds": round(t1 - t0, 3),
               "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        run.save_state(model, opt, cfg, epoch + 1, history)
        run.write_metrics(history)
        run.save_model(model, _record(cfg, normalize, history))
        if not quiet:
            _progress.note(format_row(row, need(cfg.epochs)))
        if callback is not None:
            callback(row)
    return history[-1] if history else {}


def make_gr_step(model: nn.Module, cfg: TrainConfig, resolved: str) -> GRStep | None:
    """The traced/compiled GR step for `cfg` (None: use the eager step). `resolved` is one of
    eager, traced, compiled (resolve "auto" first: :func:`cvgr.defenses.gr_step.resolve_gr_step`);
    fd mode and BatchNorm models always take the eager step."""
    from cvgr.defenses.gr_step import GRStep

    if resolved not in ("eager", "traced", "compiled"):
        raise UserError(f"make_gr_step needs eager, traced or compiled, got {resolved!r}",
                        param="gr_step")
    if resolved == "eager" or not cfg.beta > 0 or not GRStep.supports(model, cfg.gr_mode):
        return None
    return GRStep(model, cfg.beta, q=cfg.q, mode=cfg.gr_mode, gr_step=resolved)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, loader: Any, epoch: int,
                cfg: TrainConfig, progress: bool = False,
                gr_step: GRStep | str | None = None) -> dict[str, Any]:
    """One pass over `loader.epoch(epoch)` with `cfg`'s defense; returns the epoch's averages.

    `gr_step`: a :class:`~cvgr.defenses.gr_step.GRStep` (built once per run with
    :func:`make_gr_step`, so its traces are reused), or a GR step name, or None (eager). Batches
    that measure the gradient cosine always take the eager step.

    Raises TrainingDiverged (before anything is saved) if a loss or the weights turn non-finite.
    """
    if isinstance(gr_step, str):
        from cvgr.defenses.gr_step import resolve_gr_step

        gr_step = make_gr_step(model, cfg, resolve_gr_step(gr_step, len(loader)))
    model.train()
    gen = _seed_epoch(model, cfg.seed, epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    defended = cfg.beta > 0 or cfg.trades > 0  # an objective whose gradient cosine to CE counts
    tally = _Tally(epoch)
    bar = _progress.bar(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                        progress=progress, mininterval=0.5)
    try:
        for i, (x, y) in enumerate(loader.epoch(epoch)):
            want_cos = defended and i < cfg.cos_batches
            row, cos = train_step(model, opt, x, y, cfg, gen, params, want_cos,
                                  None if want_cos else gr_step)
            tally.add(row, cos, len(y))
            bar.update(1)
            if (i + 1) % CHECK_EVERY == 0:
                recent = tally.check()
                if progress:
                    bar.set_postfix(loss=f"{recent:.4f}", refresh=False)
    finally:
        bar.close()
    if not tally.rows:
        raise UserError("the training set is empty; raise train_images", param="train_images")
    tally.check()
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise TrainingDiverged(f"weights became non-finite ({bad[0]}) in epoch {epoch + 1}, "
                               f"by batch {len(tally.rows)}; {RETRY}", param="lr")
    return tally.averages(cfg)


def _seed_epoch(model: nn.Module, seed: int, epoch: int) -> torch.Generator:
    """Seed epoch `epoch`'s random draws from (seed, epoch): the global generator (anything
    that draws from it) and the returned one on the model's device (noise, attack starts)."""
    device = model_device(model)
    seed = epoch_seed(seed, epoch, TRAINER_STREAM)
    torch.manual_seed(seed)  # anything that draws from the global generator
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


@dataclass
class _Tally:
    """An epoch's per-batch results, kept on the device and looked at only by `check` (every
    `CHECK_EVERY` batches and at the end) and `averages`."""

    epoch: int
    rows: list[Tensor] = field(default_factory=list)  # [total, ce, penalty, correct] per batch
    sizes: list[int] = field(default_factory=list)
    cosines: list[Tensor] = field(default_factory=list)
    checked: int = 0  # rows[:checked] are known finite

    def add(self, row: Tensor, cos: Tensor | None, size: int) -> None:
        """Record one batch of `size` images: its row and, when measured, its cosine."""
        self.rows.append(row)
        if cos is not None:
            self.cosines.append(cos)
        self.sizes.append(size)

    def check(self) -> float:
        """Raise TrainingDiverged at a non-finite batch since the last check; else the last
        batch's loss (nan if no batch came since)."""
        recent = _check(self.rows, self.checked, self.epoch)
        self.checked = len(self.rows)
        return recent

    def averages(self, cfg: TrainConfig) -> dict[str, Any]:
        """The epoch's image-weighted averages, as `train_epoch` returns them."""
        s = torch.stack(self.rows).double()
        n = torch.tensor(self.sizes, dtype=torch.float64, device=s.device)
        sums = (s[:, :3] * n[:, None]).sum(0) / n.sum()
        return {
            "ce": float(sums[1]),
            "gr": float(sums[2]) if cfg.beta > 0 else None,
            "loss": float(sums[0]),
            "train_acc": float(s[:, 3].sum() / n.sum()),
            "cos": float(torch.stack(self.cosines).mean()) if self.cosines else None,
            **({"kl": float(sums[2])} if cfg.trades > 0 else {}),  # TRADES' batch-mean KL term
        }


@torch.no_grad()
def validate(model: nn.Module, loader: Any) -> dict[str, float]:
    """Validation loss and accuracy on clean images, model in eval mode (restored after)."""
    was_training = model.training
    model.eval()
    loss: Tensor | None = None
    correct: Tensor | None = None
    count = 0
    try:
        for x, y in loader.epoch(0):
            logits = model(x)
            l_sum = F.cross_entropy(logits, y, reduction="sum")
            c = (logits.argmax(1) == y).sum()
            loss = l_sum if loss is None else loss + l_sum
            correct = c if correct is None else correct + c
            count += len(y)
    finally:
        model.train(was_training)
    if not count or loss is None or correct is None:
        return {"val_loss": math.nan, "val_acc": math.nan}
    return {"val_loss": float(loss) / count, "val_acc": float(correct) / count}


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One terminal line per epoch."""
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"ce {row['ce']:.4f}"]
    if row.get("gr") is not None:
        parts.append(f"gr {row['gr']:.4g}")
    if row.get("kl") is not None:
        parts.append(f"kl {row['kl']:.4g}")
    parts += [f"acc {100 * row['train_acc']:.2f}%",
              f"val {100 * row['val_acc']:.2f}% (loss {row['val_loss']:.4f})"]
    if row.get("cos") is not None:
        parts.append(f"cos {row['cos']:+.3f}")
    parts += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f} s"]
    return "  ".join(parts)


def _check(per_batch: list[Tensor], start: int, epoch: int) -> float:
    """Raise TrainingDiverged naming the first non-finite batch since `start`; else last loss."""
    recent = torch.stack(per_batch[start:]) if len(per_batch) > start else None
    if recent is None:
        return math.nan
    finite = torch.isfinite(recent[:, :3]).all(1)
    if not bool(finite.all()):
        first = start + int((~finite).nonzero()[0, 0])
        what = "nan" if bool(recent[first - start, :3].isnan().any()) else "inf"
        raise TrainingDiverged(f"loss became {what} in epoch {epoch + 1}, batch {first + 1}; "
                               f"{RETRY}", param="lr")
    return float(recent[-1, 0])
