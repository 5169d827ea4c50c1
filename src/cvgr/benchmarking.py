"""One-call robustness benchmark of any model, in the spirit of RobustBench's `benchmark`.

    result = cvgr.benchmark(model, dataset="fashion-mnist", threat_model="Linf", eps=0.1,
                            n_images=1000, version="standard")
    result.robust_accuracy; result.save("bench.json")

`model` is any `nn.Module` mapping a batch of [0, 1] images to logits (not only cvgr's); it is
attacked on the first `n_images` test images of the dataset with an AutoAttack version
(`cvgr.evaluate.autoattack`).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cvgr.errors import UserError
from cvgr.io import write_json

__all__ = ["THREAT_MODELS", "BenchmarkResult", "benchmark", "claim_eps"]

THREAT_MODELS = {"linf": "linf", "l2": "l2"}


@dataclass
class BenchmarkResult:
    """What `benchmark` measured; `to_dict()` / `save()` give the same as JSON."""

    dataset: str
    threat_model: str
    eps: float
    n_images: int
    version: str
    clean_accuracy: float
    robust_accuracy: float
    attacks: list[dict[str, Any]]  # per attack: name, settings, robust accuracy after it
    images: dict[str, Any]  # which test images: split, first index, count
    robust_indices: list[int]  # images (0-based in the test set) no attack fooled
    seconds: float
    device: str
    versions: dict[str, str]
    seed: int
    flags: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON (atomically)."""
        return write_json(path, self.to_dict())

    def summary(self) -> str:
        per = ", ".join(f"{a['attack']} {a['robust_accuracy']:.4f}" for a in self.attacks)
        return (f"{self.dataset} {self.threat_model} eps={self.eps:g}, {self.n_images} "
                f"images, AutoAttack {self.version}: clean {self.clean_accuracy:.4f}, robust "
                f"{self.robust_accuracy:.4f} (after each attack: {per}; {self.seconds:.1f} s "
                f"on {self.device})")


def benchmark(model: nn.Module, dataset: str = "fashion-mnist", threat_model: str = "Linf",
              eps: float = 0.1, n_images: int = 1000, version: str = "standard",
              device: str | torch.device | None = None, *, attacks: Any = None,
              batch_size: int = 250, seed: int = 0, data_root: str | os.PathLike | None = None,
              progress: bool = False, save: str | os.PathLike | None = None
              ) -> BenchmarkResult:
    """Clean and AutoAttack robust accuracy of `model` on the first `n_images` test images.

    `threat_model` is "Linf" or "L2"; `version` "standard" (the authors' AutoAttack), "art" or
    "custom" (with `attacks`, see `cvgr.evaluate.autoattack`). `device` defaults to CUDA when
    present; the model is moved there. With `save`, the result is also written as JSON.
    """
    from cvgr.attacks import check_eps
    from cvgr.attacks.common import check_count
    from cvgr.evaluate.autoattack import version_attacks
    from cvgr.io import check_output_file

    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch nn.Module, got {type(model).__name__}",
                        param="model")
    norm = THREAT_MODELS.get(str(threat_model).lower())
    if norm is None:
        raise UserError(f"unknown threat_model {threat_model!r}; choose Linf or L2",
                        param="threat_model")
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise UserError(f"n_images must be a whole number >= 1, got {n_images!r}",
                        param="n_images")
    check_eps(eps, norm)
    version_attacks(version, attacks)  # a bad version or attack list fails before any work
    batch_size = check_count(batch_size, "batch_size")
    if save is not None:
        check_output_file(save, "save")  # before the attacks, not after them
    from cvgr.data import DATASETS, first_test_images
    from cvgr.devices import describe_device, resolve_device

    dev = resolve_device(device)
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(sorted(DATASETS))}",
                        param="dataset")
    x, y = first_test_images(dataset, n_images, data_root)
    spec_classes = int(DATASETS[dataset].num_classes)
    model = model.to(dev).eval()
    _check_model(model, x, spec_classes, dataset, batch_size)
    from cvgr.evaluate import autoattack

    t0 = time.perf_counter()
    res = autoattack(model, x, y, eps, norm=norm, version=version, attacks=attacks,
                     batch_size=batch_size, seed=seed, progress=progress)
    assert isinstance(res, dict)
    out = BenchmarkResult(
        dataset=dataset, threat_model="Linf" if norm == "linf" else "L2", eps=float(eps),
        n_images=len(x), version=version, clean_accuracy=res["clean_accuracy"],
        robust_accuracy=res["robust_accuracy"], attacks=res["attacks"],
        images={"split": "test", "first": 0, "count": len(x)},
        robust_indices=res["robust_indices"], seconds=round(time.perf_counter() - t0, 3),
        device=describe_device(dev), versions=res["libraries"], seed=int(seed),
        flags=res["flags"], model=_describe(model))
    if save is not None:
        out.save(save)
    return out


def _check_model(model: nn.Module, x: Tensor, classes: int, dataset: str,
                 batch_size: int = 250) -> None:
    """Refuse, before any attack, a model whose numbers would mean nothing: one that fails on
    the images, or does not answer every batch with finite float logits shaped (N, classes),
    or whose output does not depend on its input (no gradient reaches the images)."""
    from cvgr.devices import model_device

    dev = model_device(model)
    bad = 0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        with torch.no_grad():
            out = _forward(model, xb, dataset)
        _check_logits(out, len(xb), classes, dataset)
        bad += int((~torch.isfinite(out)).any(1).sum())
    if bad:
        raise UserError(f"the model's logits hold NaN or inf on {bad} of {len(x)} {dataset} "
                        "images; its accuracy would be noise: fix or retrain the model",
                        param="model")
    xg = x[:2].to(dev).requires_grad_(True)
    out = _forward(model, xg, dataset)
    grad = torch.autograd.grad(out.sum(), xg, allow_unused=True)[0] if out.requires_grad \
        else None
    if grad is None:
        raise UserError("the model's output does not depend on its input (no gradient reaches "
                        "the images); no attack can evaluate it", param="model")


def _forward(model: nn.Module, x: Tensor, dataset: str) -> Any:
    try:
        return model(x)
    except Exception as e:  # noqa: BLE001 - any failure of a user's model becomes one line
        raise UserError(f"the model failed on {dataset} images shaped {tuple(x.shape[1:])} "
                        f"in [0, 1]: {type(e).__name__}: {str(e)[:200]}",
                        param="model") from None


def _check_logits(out: Any, n: int, classes: int, dataset: str) -> None:
    if not isinstance(out, Tensor) or out.dim() != 2 or tuple(out.shape) != (n, classes):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise UserError(f"the model must return logits shaped (N, {classes}) for {dataset}, "
                        f"one row per image; for {n} images it returned {shape}", param="model")
    if not out.is_floating_point():
        raise UserError(f"the model must return float logits; it returned {out.dtype}",
                        param="model")


def _describe(model: nn.Module) -> dict[str, Any]:
    rec = getattr(model, "record", None) or {}
    d: dict[str, Any] = {"class": type(model).__name__,
                         "parameters": sum(p.numel() for p in model.parameters())}
    for k in ("arch", "complex", "dataset", "defense", "seed", "zoo_name", "epochs",
              "epochs_completed", "finished"):
        if k in rec:
            d[k] = rec[k]
    return d


def claim_eps(dataset: str) -> float:
    """The L-inf radius at which the reproduction judges the paper's claims on `dataset`."""
    from cvgr.data.specs import DATASETS

    spec = DATASETS.get(dataset)
    if spec is None or getattr(spec, "settings", None) is None:
        raise UserError(f"no claim eps for dataset {dataset!r}; pass eps explicitly")
    return float(spec.settings.claim_eps)
