"""Training zoo entries into run directories and publishing finished runs into the zoo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvgr.errors import UserError
from cvgr.io import read_json, read_jsonl, utc_now
from cvgr.zoo.catalogue import CATALOGUE, ZooEntry, entries, entry, weights_file

__all__ = ["publish", "publishable_runs", "run_entry", "train"]


def train(names: Sequence[str] | None, runs_dir: str | os.PathLike, *,
          device: str | None = None, data_root: str | os.PathLike | None = None,
          progress: bool = True, log: Any = print, gr_step: str = "auto") -> list[Path]:
    """Train entries one after another into RUNS_ROOT/<dataset>/<name>, resuming any stopped run.

    A finished run is left as it is, so the command can be rerun until everything is done.
    `gr_step` is how GR entries run their step (:func:`cvgr.train.train`; same objective).
    """
    from cvgr.train import train as train_run
    from cvgr.train.rundir import RunDir

    todo = entries(names)
    for e in todo:
        e.config()  # every configuration is checked before the first (hours-long) run
    out = []
    for e in todo:
        run_dir = Path(runs_dir) / e.dataset / e.short
        resume = RunDir(run_dir).state_file.is_file()
        log(f"zoo train {e.name}: {e.command(run_dir)}" + (" (resuming)" if resume else ""))
        train_run(e.config(), run_dir, resume=resume, progress=progress, device=device,
                  data_root=data_root, gr_step=gr_step)
        out.append(run_dir)
    return out


def run_entry(run_dir: str | os.PathLike) -> ZooEntry | None:
    """The catalogue entry whose configuration this run directory holds, if any."""
    from cvgr.train.rundir import RunDir

    cfg = RunDir(run_dir).stored_config()
    if cfg is None:
        return None
    cfg = cfg.resolved()
    return next((e for e in CATALOGUE.values() if e.config() == cfg), None)


def publishable_runs(runs_dir: str | os.PathLike) -> list[tuple[ZooEntry, Path]]:
    """Finished runs under RUNS_ROOT/<dataset>/<name> that hold their entry's configuration."""
    from cvgr.checkpoint import read_record

    found = []
    for e in CATALOGUE.values():
        d = Path(runs_dir) / e.dataset / e.short
        if (d / "model.safetensors").is_file() and run_entry(d) == e \
                and read_record(d).get("finished"):
            found.append((e, d))
    return found


def publish(run_dir: str | os.PathLike, name: str | None = None, *,
            zoo_dir: str | os.PathLike | None = None, hardware: str | None = None) -> Path:
    """Copy a finished run's weights and record into the zoo, atomically; return the file.

    The run must hold exactly the entry's configuration (found from the run when `name` is
    None). The record gains a "zoo" section: name, command, per-epoch training seconds,
    the training device and hardware.
    """
    from cvgr.checkpoint import load, read_record, save_model
    from cvgr.devices import describe_hardware
    from cvgr.train.rundir import RunDir

    rd = RunDir(run_dir)
    cfg = rd.stored_config()
    if cfg is None or not rd.model_file.is_file():
        raise UserError(f"{run_dir}: not a cvgr run directory (no config.json and "
                        "model.safetensors); give the output directory of `cvgr train`",
                        param="run_dir")
    cfg = cfg.resolved()
    if name is None:
        e = run_entry(run_dir)
        if e is None:
            raise UserError(f"{run_dir}: its training settings match no zoo entry; "
                            f"`cvgr zoo` lists the entries and their commands")
    else:
        e = entry(name)
        if e.config() != cfg:
            diffs = "; ".join(e.config().differences(cfg)[:4])
            raise UserError(f"{run_dir} was not trained as zoo:{e.name} ({diffs})")
    record = read_record(rd.model_file)
    if not record.get("finished"):
        raise UserError(f"{run_dir}: training is not finished ({record.get('epochs_completed')}"
                        f"/{record.get('epochs')} epochs); resume it with `cvgr zoo train "
                        f"{e.name}` first")
    stored = read_json(rd.config_file)
    history = read_jsonl(rd.metrics_file) if rd.metrics_file.is_file() else []
    device = str(stored.get("environment", {}).get("device", "unknown"))
    record["zoo"] = {
        "name": e.name, "summary": e.summary, "command": stored.get("command"),
        "train_seconds_per_epoch": [r.get("train_seconds") for r in history],
        "device": device, "hardware": hardware or describe_hardware(device),
        "hardware_source": "given" if hardware else "detected when published",
        "published": utc_now(),
    }
    model = load(rd.model_file)
    return save_model(model, weights_file(e.name, zoo_dir), record)
