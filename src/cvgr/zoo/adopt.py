"""Taking a shipped zoo model (and its stored evaluation) instead of training it again.

A reproduction's train job whose resolved configuration is identical to a zoo entry's
(architecture, defense, beta, noise, seed, recipe, data) is the same training: the zoo's
weights are what that job would produce, up to the last bits of the device's arithmetic. So
`cvgr reproduce` takes them (unless ``--retrain``): the job's run directory becomes a finished
run holding the zoo's weights, its configuration and per-epoch seconds, and its
``config.json`` says where it came from (``environment.source``: ``"zoo:<name>"``), so the
report can say which models came from the zoo.

An AutoAttack job on such a model with exactly the zoo's stored evaluation settings (version,
eps, image count, the same weights) takes the stored result too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from cvgr.io import atomic_write, read_json, write_json

__all__ = ["SOURCE_KEY", "adopt_autoattack", "adopt_run", "adopted_from", "entry_for"]

SOURCE_KEY = "source"
"""The key of config.json's "environment" that names a run's origin ("zoo:<name>")."""


def entry_for(cfg: Any) -> Any:
    """The zoo entry trained with exactly the resolved TrainConfig `cfg`, or None."""
    from cvgr.zoo.catalogue import CATALOGUE

    cfg = cfg.resolved()
    return next((e for e in CATALOGUE.values() if e.config() == cfg), None)


def adopt_run(cfg: Any, run_dir: str | os.PathLike, zoo_dir: str | os.PathLike | None = None
              ) -> str | None:
    """Make RUN_DIR a finished run of `cfg` from the shipped zoo model trained with exactly it.

    Returns the zoo name taken, or None (no such entry, not shipped, or RUN_DIR already holds
    something: an existing run is never replaced).
    """
    from cvgr.checkpoint import read_record
    from cvgr.train.rundir import RunDir
    from cvgr.zoo import weights_file

    e = entry_for(cfg)
    if e is None:
        return None
    wf = weights_file(e.name, zoo_dir)
    rd = RunDir(run_dir)
    if not wf.is_file() or rd.config_file.exists() or rd.model_file.exists():
        return None
    record = read_record(wf)
    if not record.get("finished"):
        return None
    z = record.get("zoo", {})
    rd.path.mkdir(parents=True, exist_ok=True)
    atomic_write(rd.model_file, lambda tmp: shutil.copyfile(wf, tmp))
    rd.write_metrics(_history(record))
    resolved = cfg.resolved()
    write_json(rd.config_file, {
        "config": resolved.to_dict(), "command": z.get("command"),
        "defense": resolved.defense_settings(),
        "environment": {SOURCE_KEY: f"zoo:{e.name}", "device": z.get("device"),
                        "hardware": z.get("hardware"), "published": z.get("published"),
                        "versions": record.get("versions")}})
    return str(e.name)


def _history(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-epoch rows from a zoo record: its training seconds, and the final metrics last."""
    secs = record.get("zoo", {}).get("train_seconds_per_epoch") or []
    rows: list[dict[str, Any]] = [{"epoch": i + 1, "train_seconds": s}
                                  for i, s in enumerate(secs)]
    final = dict(record.get("metrics") or {})
    if rows:
        rows[-1] = {**final, **rows[-1], "epoch": len(rows)}
    elif final:
        rows = [final]
    return rows


def adopted_from(run_dir: str | os.PathLike) -> str | None:
    """The zoo name a run directory was taken from, or None (trained here, or no run)."""
    from cvgr.train.rundir import RunDir

    src = RunDir(run_dir).environment().get(SOURCE_KEY)
    return src if isinstance(src, str) and src.startswith("zoo:") else None


def adopt_autoattack(config: dict[str, Any], run_dir: str | os.PathLike,
                     zoo_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The zoo's stored AutoAttack of the model in RUN_DIR, as an autoattack job's result, when
    the model came from the zoo and the stored evaluation has exactly `config`'s settings
    (version, custom attacks, eps, image count) on the same weights; else None."""
    from cvgr.zoo.catalogue import eval_file, weights_digest, weights_file

    name = adopted_from(run_dir)
    if name is None:
        return None
    name = name.removeprefix("zoo:")
    ef, wf = eval_file(name, zoo_dir), weights_file(name, zoo_dir)
    if not ef.is_file() or not wf.is_file():
        return None
    ev = read_json(ef)
    aa = ev.get("autoattack")
    want = {"version": config["version"], "attacks": config.get("attacks"),
            "n_images": config["n_images"], "eps": config["eps"]}
    have = {k: ev.get(k) for k in want}
    if not isinstance(aa, dict) or json.dumps(have) != json.dumps(want) \
            or ev.get("weights_sha256") != weights_digest(wf) \
            or ev.get("weights_sha256") != weights_digest(Path(run_dir) / "model.safetensors"):
        return None
    res = dict(aa)
    res["pgd_accuracy"] = (ev.get("pgd8") or {}).get("accuracy")
    res["source"] = f"zoo:{name} (measured {ev.get('measured')} on {ev.get('device')})"
    return res
