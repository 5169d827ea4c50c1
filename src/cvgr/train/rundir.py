"""A run directory: what it holds, whether it is ours, and the state that lets a run resume.

    RUN/config.json        the resolved TrainConfig (+ the equivalent command line, environment)
    RUN/metrics.jsonl      one JSON line per finished epoch
    RUN/model.safetensors  weights + record (cvgr.load rebuilds the model from it alone)
    RUN/state.safetensors  resume state: weights, SGD momentum buffers, epochs done, history

Every file is written atomically. The resume state is written first at the end of an epoch,
so it is the single source of truth: on resume, metrics.jsonl and model.safetensors are
rebuilt from it. No RNG state is stored because every random draw of epoch e is seeded from
(seed, e) alone; momentum, weights and the epoch count are all a run carries between epochs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import nn

from cvgr.checkpoint import CheckpointError, read_record, save_model, write_safetensors
from cvgr.devices import model_device
from cvgr.errors import UserError
from cvgr.io import LOCK_FILE, atomic_write, read_json, shell_command, to_json, write_json
from cvgr.train.config import TrainConfig

__all__ = ["RunDir"]

_META = "cvgr_state"


class RunDir:
    """Files of one run. `prepare()` decides between new / resume / finished and guards others."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.metrics_file = self.path / "metrics.jsonl"
        self.model_file = self.path / "model.safetensors"
        self.state_file = self.path / "state.safetensors"

    # -- what is there -------------------------------------------------------------------------

    def environment(self) -> dict[str, Any]:
        """config.json's "environment" (device, hardware, a zoo model's source...), or {}
        where there is no readable config.json."""
        try:
            env = read_json(self.config_file).get("environment") \
                if self.config_file.is_file() else None
        except (OSError, ValueError, AttributeError):
            return {}
        return env if isinstance(env, dict) else {}

    def stored_config(self) -> TrainConfig | None:
        if not self.config_file.is_file():
            return None
        try:
            return TrainConfig.from_dict(read_json(self.config_file)["config"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.config_file}: not a cvgr run config ({e}); "
                            "choose another output directory", param="out") from None

    def state_meta(self) -> dict[str, Any] | None:
        if not self.state_file.is_file():
            return None
        try:
            with safe_open(str(self.state_file), framework="pt") as f:
                return json.loads((f.metadata() or {})[_META])
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise CheckpointError(f"{self.state_file}: unreadable resume state ({e}); "
                                  "remove the run directory and train again") from None

    def finished_metrics(self, cfg: TrainConfig) -> dict[str, Any] | None:
        """Final metrics if this directory holds `cfg`'s run, finished and saved; else None."""
        if self.stored_config() != cfg or not self.model_file.is_file():
            return None
        try:
            rec = read_record(self.model_file)
        except CheckpointError:  # damaged: not finished; resuming rebuilds it from the state
            return None
        if rec.get("finished") and rec.get("epochs_completed") == cfg.epochs:
            return rec.get("metrics")
        return None

    def prepare(self, cfg: TrainConfig, resume: bool, environment: dict[str, Any]) -> int:
        """Claim the directory for `cfg`; return the number of epochs already done.

        Refuses (UserError, nothing written) a directory that holds a different run, a
        non-empty directory that is not a run, and an unfinished run without `resume`.
        """
        stored, meta, done = self.check(cfg, resume)
        if stored is None or meta is None:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.config_file, {
                "config": cfg.to_dict(),
                "command": shell_command(["cvgr", "train", *cfg.argv(), "--out",
                                          str(self.path)]),
                "defense": cfg.defense_settings(),
                "environment": environment,
            })
            if self.metrics_file.exists():
                self.metrics_file.unlink()
            return 0
        return done

    def check(self, cfg: TrainConfig, resume: bool
              ) -> tuple[TrainConfig | None, dict[str, Any] | None, int]:
        """What `prepare` would find, read only: (stored config, resume state, epochs done)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"output directory {self.path} is a file; give a directory",
                            param="out")
        stored = self.stored_config()
        if stored is None:
            if self.path.is_dir() and any(f.name != LOCK_FILE for f in self.path.iterdir()):
                raise UserError(f"output directory {self.path} is not empty and holds no cvgr "
                                "run; give a new or empty directory", param="out")
        elif stored != cfg:
            diffs = "; ".join(cfg.differences(stored)[:4])
            raise UserError(f"output directory {self.path} holds a different run ({diffs}); "
                            "give another one or delete it", param="out")
        meta = self.state_meta() if stored is not None else None
        if stored is not None and meta is None and (resume or self.model_file.exists()):
            raise UserError(f"output directory {self.path} holds this run without its resume "
                            "state (state.safetensors); it cannot be continued, and starting "
                            "again would overwrite it: give another directory or delete it",
                            param="resume" if resume else "out")
        done = int(meta["epoch"]) if meta else 0
        if meta is not None:
            self._check_arch(meta, cfg)
        if 0 < done < int(cfg.epochs or 0) and not resume:
            raise UserError(f"output directory {self.path} holds this run, stopped after "
                            f"epoch {done}/{cfg.epochs}; resume to continue it", param="resume")
        return stored, meta, done

    def _check_arch(self, meta: dict[str, Any], cfg: TrainConfig) -> None:
        if meta.get("arch") != cfg.arch or bool(meta.get("complex")) != cfg.complex:
            kind = "complex" if meta.get("complex") else "real"
            raise CheckpointError(f"{self.state_file}: checkpoint of a {kind} {meta.get('arch')}"
                                  f", but this run trains {cfg.arch} "
                                  f"({'complex' if cfg.complex else 'real'}); give another output "
                                  "directory", param="out")

    # -- resume state --------------------------------------------------------------------------

    def save_state(self, model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig,
                   epoch: int, history: list[dict[str, Any]]) -> None:
        tensors = {f"model.{k}": v.detach().contiguous().cpu()
                   for k, v in model.state_dict().items()}
        for i, p in enumerate(_params(opt)):
            buf = opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{i}"] = buf.detach().contiguous().cpu()
        meta = {"epoch": epoch, "arch": cfg.arch, "complex": cfg.complex, "history": history}
        write_safetensors(self.state_file, tensors, {_META: json.dumps(meta)})

    def load_state(self, model: nn.Module, opt: torch.optim.Optimizer,
                   cfg: TrainConfig) -> tuple[int, list[dict[str, Any]]]:
        """Restore weights and momentum in place; return (epochs done, metrics history)."""
        meta = self.state_meta()
        if meta is None:
            raise CheckpointError(f"{self.state_file}: no resume state; train without resume",
                                  param="resume")
        self._check_arch(meta, cfg)
        try:
            tensors = load_file(str(self.state_file))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{self.state_file}: corrupt resume state ({e})") from None
        dev = model_device(model)
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{self.state_file}: weights do not fit {cfg.arch}: "
                                  f"{str(e).splitlines()[0][:200]}") from None
        for i, p in enumerate(_params(opt)):
            buf = tensors.get(f"momentum.{i}")
            if buf is not None:
                opt.state[p]["momentum_buffer"] = buf.to(dev)
        return int(meta["epoch"]), list(meta["history"])

    # -- outputs -------------------------------------------------------------------------------

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the history (after a resume, drops a torn epoch)."""
        text = "".join(to_json(row, indent=None) + "\n" for row in history)

        def w(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write(text)

        atomic_write(self.metrics_file, w)

    def save_model(self, model: nn.Module, record: dict[str, Any]) -> None:
        save_model(model, self.model_file, record)


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]
