"""Trained runs as evaluation inputs: a run's model, its test images, a summary of it.

What `cvgr attack`, `eval`, `transfer` and `autoattack` share, so that each of them only parses
its options and prints; usable from Python the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cvgr.checkpoint import record_of
from cvgr.errors import UserError
from cvgr.zoo.catalogue import is_zoo_name

__all__ = ["RUN_FILES", "default_out", "load_run", "model_summary", "record_dataset",
           "run_inputs", "run_labels", "shared_model_test_images", "model_test_images"]

PathLike = str | os.PathLike

RUN_FILES = ("config.json", "metrics.jsonl", "model.safetensors", "state.safetensors",
             ".cvgr.lock")
"""What a run directory holds (cvgr.train.rundir): no evaluation output may replace one."""


def load_run(path: PathLike, device: str | torch.device = "cpu",
             allow_unfinished: bool = False) -> nn.Module:
    """A run directory or weights file -> model in eval mode; a UserError when there is none,
    and for a run that has not finished unless `allow_unfinished` (`cvgr.load`)."""
    from cvgr.loading import load

    return load(path, device, allow_unfinished=allow_unfinished)


def model_test_images(model: nn.Module, dataset: str | None = None,
                      n_images: int | None = None, *, data_root: PathLike | None = None
                      ) -> tuple[Tensor, Tensor, str]:
    """The model's test set on the CPU: (x float in [0, 1], y, dataset name).

    `dataset` defaults to the one in the model's record; `n_images` keeps the first N images;
    `data_root` is where the dataset files are (default: the data module's search).
    """
    from cvgr.data import first_test_images

    name = record_dataset(model, dataset)
    if n_images is not None and n_images < 1:
        raise UserError(f"n_images must be >= 1, got {n_images}", param="n_images")
    x, y = first_test_images(name, n_images, data_root)
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise UserError(f"dataset {name} has images {tuple(x.shape[1:])} but the model takes "
                        f"{tuple(shape)}; pick the dataset the model was trained on",
                        param="dataset")
    return x, y, name


def record_dataset(model: nn.Module, dataset: str | None = None) -> str:
    """`dataset`, else the one the model's record names: a record naming none, or one this
    cvgr does not know, is blamed on the record (not on a dataset the user did not give)."""
    from cvgr.data import DATASETS

    if dataset:
        return dataset
    name = record_of(model, missing_ok=True).get("dataset")
    if not name:
        raise UserError("the model's record names no dataset; give the dataset to test on",
                        param="dataset")
    if name not in DATASETS:
        raise UserError(f"the model's record names a dataset this cvgr does not know "
                        f"({str(name)[:80]!r}); give the dataset to test on", param="dataset")
    return str(name)


def shared_model_test_images(models: Mapping[str, nn.Module], dataset: str | None = None,
                             n_images: int | None = None, *, data_root: PathLike | None = None
                             ) -> tuple[Tensor, Tensor, str]:
    """One test set that every model in `models` (label -> model) takes.

    Without `dataset`, the models must have been trained on one dataset; every model must take
    the set's image shape.
    """
    if not models:
        raise UserError("no models given", param="runs")
    datasets = {n: record_of(m, missing_ok=True).get("dataset") for n, m in models.items()}
    if dataset is None and len(set(datasets.values())) > 1:
        raise UserError(f"models were trained on different datasets {datasets}; transfer needs "
                        "one dataset: name the one to test on", param="dataset")
    x, y, name = model_test_images(next(iter(models.values())), dataset, n_images,
                                   data_root=data_root)
    for n, m in models.items():
        shape = getattr(m, "input_shape", None)
        if shape is not None and tuple(shape) != tuple(x.shape[1:]):
            raise UserError(f"model {n} takes {tuple(shape)} images, not {tuple(x.shape[1:])}",
                            param="dataset")
    return x, y, name


def model_summary(model: nn.Module, path: PathLike) -> dict[str, Any]:
    """Where a model came from and what it is, for result files."""
    r = record_of(model, missing_ok=True)
    return {"path": str(path), **{k: r[k] for k in ("arch", "complex", "dataset", "defense",
                                                     "seed", "epochs", "epochs_completed",
                                                     "finished") if k in r}}


def default_out(run: PathLike, stem: str, suffix: str = ".json") -> Path:
    """RUN_DIR/STEM.json: a result file goes into the run's directory (beside a weights file).

    A zoo model has no directory of its own to write into (its files are the package's): the
    output must be named."""
    if is_zoo_name(run):
        raise UserError(f"{run} is a zoo model, with no run directory to write into; give out "
                        "(a FILE.json) for the result", param="out")
    base = Path(run)
    return (base if base.is_dir() else base.parent) / f"{stem}{suffix}"


def run_inputs(run: PathLike) -> list[Path]:
    """The files a run (directory, weights file or zoo name) is made of: what an evaluation of
    it must never write over (its weights, and a run directory's record, metrics and state)."""
    if is_zoo_name(run):
        from cvgr.zoo.catalogue import eval_file, weights_file

        return [weights_file(str(run)), eval_file(str(run))]
    p = Path(run)
    files = [] if p.is_dir() else [p]
    if p.is_dir() or p.name == RUN_FILES[2]:
        base = p if p.is_dir() else p.parent
        files += [base / f for f in RUN_FILES]
    return files


def run_labels(runs: Sequence[PathLike], names: Sequence[str] | None = None) -> list[str]:
    """One distinct label per run: `names` as given, else each run directory's name."""
    if names is not None:
        out = [n.strip() for n in names]
        if len(out) != len(runs) or len(set(out)) != len(out) or not all(out):
            raise UserError(f"names needs {len(runs)} distinct labels, one per run", param="names")
        return out
    out = []
    for r in runs:
        p = Path(r)
        base = (p if p.is_dir() else p.parent).resolve().name or str(p)
        label, k = base, 2
        while label in out:
            label, k = f"{base}#{k}", k + 1
        out.append(label)
    return out
