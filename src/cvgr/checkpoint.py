"""Model weights as safetensors plus a JSON record of how they were made.

The record (architecture, real/complex, dataset, defense and settings, seed, metrics, package
versions) lives in the safetensors header, so a single file rebuilds the model: no pickle.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from cvgr.errors import RunError, UserError
from cvgr.io import atomic_write

__all__ = ["MODEL_FILE", "CheckpointError", "NoCheckpoint", "UnfinishedRun", "UnknownArchitecture",
           "check_finite", "check_finished", "load", "model_path", "read_record", "save_model",
           "versions", "write_safetensors"]

MODEL_FILE = "model.safetensors"
_KEY = "cvgr"


class CheckpointError(RunError):
    """A checkpoint that is corrupt or does not fit what was asked of it (exit code 1)."""


class NoCheckpoint(CheckpointError):
    """No model at the path the user named: a usage error (exit code 2)."""

    exit_code = 2


class UnknownArchitecture(CheckpointError):
    """The record names an architecture not registered here; importing the module that
    registers it fixes the command line (exit code 2)."""

    exit_code = 2


class UnfinishedRun(CheckpointError):
    """The weights of a run that stopped or diverged before its last epoch: refused unless the
    caller says it wants them (`allow_unfinished`), which the command line can (exit code 2)."""

    exit_code = 2


def versions() -> dict[str, str]:
    import numpy

    from cvgr.version import __version__

    return {"cvgr": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def model_path(path: str | os.PathLike) -> Path:
    """A run directory or a .safetensors file -> the weights file. (Zoo names are resolved
    above this module, by `cvgr.load`.)"""
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise NoCheckpoint(
            f"{p}: no model here; train one with `cvgr train ... --out DIR` or give a "
            f"run directory that holds {MODEL_FILE}"
        )
    return p


def save_model(model: nn.Module, path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Atomically write `model`'s state and `record` (must hold 'arch' and 'complex')."""
    for k in ("arch", "complex"):
        if k not in record:
            raise ValueError(f"checkpoint record needs {k!r}")
    record = {**record, "versions": record.get("versions") or versions()}
    if "arch_source" not in record:
        from cvgr.models import resolve

        try:
            spec = resolve(str(record["arch"]))
        except ValueError:  # not registered: saved all the same, without its source
            spec = None
        if spec is not None:  # which builder made it: named when a later load cannot find it
            record["arch_source"] = spec.module
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {_KEY: json.dumps(record, default=_json_default)}
    return write_safetensors(path, state, meta)


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                      metadata: dict[str, str]) -> Path:
    """Atomically write a safetensors file. A failed write (disk full) is an OSError naming the
    file, as any other failed write is, not safetensors' own exception and its traceback."""

    def write(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as e:
            code = re.search(r"code: (\d+)", str(e))
            num = int(code.group(1)) if code else errno.EIO
            raise OSError(num, os.strerror(num), str(path)) from None

    return atomic_write(path, write)


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    p = model_path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p}: not a readable safetensors file ({e})") from None
    if _KEY not in meta:
        raise CheckpointError(f"{p}: safetensors file without a cvgr record; not a cvgr model")
    try:
        record = json.loads(meta[_KEY])
    except ValueError as e:
        raise CheckpointError(f"{p}: the cvgr record is not JSON ({e}); the file is damaged, "
                              "train the model again") from None
    if not isinstance(record, dict) or not isinstance(record.get("arch"), str) \
            or not isinstance(record.get("complex"), bool):
        raise CheckpointError(f"{p}: the cvgr record lacks 'arch' (a name) and 'complex' (true "
                              "or false); not a cvgr model")
    return record


def check_finished(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse the record of a run that stopped or diverged before its last epoch."""
    if record.get("finished") is False:
        done, total = record.get("epochs_completed"), record.get("epochs")
        raise UnfinishedRun(
            f"{path}: the run is not finished (last epoch {done} of {total}: it stopped or "
            "diverged), so its numbers would not be the model's; finish it with `cvgr train "
            "... --resume`, or allow unfinished runs to use these weights on purpose",
            param="allow_unfinished")


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         arch: str | None = None, complex: bool | None = None, *,
         allow_unfinished: bool = False) -> nn.Module:
    """Rebuild a model from its checkpoint alone; returned in eval mode with `.record` set.

    `path` is a run directory or a .safetensors file (`cvgr.load` also takes zoo models).

    If `arch`/`complex` are given, a checkpoint of another architecture is refused. The weights
    of a run that has not finished (its record says `finished: false`: stopped or diverged) are
    refused unless `allow_unfinished`; the record tells its last epoch (`epochs_completed`).
    """
    from cvgr.models import create_model, list_models, resolve

    p = model_path(path)
    record = read_record(p)
    if not allow_unfinished:
        check_finished(record, p)
    try:
        spec = resolve(str(record.get("arch")))
    except ValueError:
        source = record.get("arch_source")
        where = f", saved from {source}" if source else ""
        raise UnknownArchitecture(
            f"{p}: the record names an architecture this cvgr does not know "
            f"({record.get('arch')!r}{where}): if it is your own, import the module that "
            "registers it first (Python: import it; CLI: `cvgr --import MODULE_OR_FILE ...`), "
            f"else load it with the cvgr version that made it; registered: "
            f"{', '.join(list_models())}") from None
    if arch is not None and resolve(arch).name != spec.name:
        raise CheckpointError(f"{p}: checkpoint is {record['arch']}, expected {arch}")
    if complex is not None and bool(complex) != bool(record["complex"]):
        kind = "complex" if record["complex"] else "real"
        raise CheckpointError(f"{p}: checkpoint is a {kind} network, expected the other kind")
    norm = record.get("normalize")
    try:
        model = create_model(record["arch"], complex=record["complex"],
                      normalize=tuple(map(tuple, norm)) if norm else None)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: the record's settings do not build a model "
                              f"({str(e)[:200]}); the file is damaged") from None
    try:
        state = load_file(str(p))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{p}: corrupt weights ({e})") from None
    check_finite(state, p)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise CheckpointError(f"{p}: weights do not fit {record['arch']}: {str(e)[:300]}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{p}: weights do not fit {record['arch']} "
            f"({'complex' if record['complex'] else 'real'}): missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.record = record  # type: ignore[assignment]  # a plain attribute, not a tensor
    return model.to(device).eval()


def record_of(model: nn.Module, *, missing_ok: bool = False) -> dict[str, Any]:
    """The JSON record a model loaded by `load` carries (architecture, dataset, defense...).

    A model built in Python has none: a UserError, or {} with `missing_ok` (for a caller that
    takes the dataset from the user when the model does not name it)."""
    rec = model.__dict__.get("record")
    if isinstance(rec, dict):
        return rec
    if missing_ok:
        return {}
    raise UserError("this model was not loaded from a run directory (it has no record)",
                    param="model")


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights holding NaN or inf: such a model answers, but every number is noise."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            what = "NaN" if bool(t.isnan().any()) else "inf"
            raise CheckpointError(f"{path}: weight {name} holds {what}; the run that wrote it "
                                  "diverged or the file is damaged; train it again")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
