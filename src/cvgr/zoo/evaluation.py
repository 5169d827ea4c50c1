"""Measuring the zoo's models: clean, PGD(8) and AutoAttack accuracy, stored beside the
weights, and further attacks on the survivors of the standard AutoAttack."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cvgr.errors import UserError
from cvgr.io import read_json, utc_now, write_json
from cvgr.zoo.catalogue import (
    ZooEntry,
    entries,
    entry,
    eval_file,
    locate,
    weights_digest,
    weights_file,
)

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

__all__ = ["evaluate", "evaluate_further"]


def evaluate(names: Sequence[str] | None = None, n_images: int = 500, *,
             zoo_dir: str | os.PathLike | None = None, device: str | None = None,
             version: str = "standard", attacks: Any = None, force: bool = False,
             data_root: str | os.PathLike | None = None, progress: bool = True,
             log: Any = print) -> list[dict[str, Any]]:
    """Clean, PGD(8) and AutoAttack accuracy at the dataset's claim eps on the first
    `n_images` test images, per shipped model, stored as JSON beside its weights.

    Resumable: a model whose stored evaluation has the same weights (sha256), n_images, eps,
    version and attacks is skipped unless `force`; PGD(8) is stored before AutoAttack starts.
    """
    from cvgr.benchmarking import claim_eps
    from cvgr.devices import resolve_device

    todo = _shipped(names, n_images, version, attacks, zoo_dir)
    dev = resolve_device(device)
    results = []
    for e in todo:
        wf, ef = weights_file(e.name, zoo_dir), eval_file(e.name, zoo_dir)
        eps = claim_eps(e.dataset)
        key = {"n_images": n_images, "eps": eps, "norm": "linf",
               "weights_sha256": weights_digest(wf), "version": version, "attacks": attacks}
        old = read_json(ef) if ef.is_file() else {}
        if not force and {k: old.get(k) for k in key} == key and "autoattack" in old:
            log(f"zoo evaluate {e.name}: already measured ({n_images} images, eps {eps:g}); "
                "--force redoes it")
            results.append(old)
            continue
        results.append(_measure(e, key, zoo_dir, dev, data_root, progress, log))
    return results


def _shipped(names: Sequence[str] | None, n_images: int, version: str, attacks: Any,
             zoo_dir: str | os.PathLike | None) -> list[ZooEntry]:
    """The entries to evaluate: the named ones (all if none), each of which must be shipped;
    with no names, the shipped ones. Checks n_images and the AutoAttack version first."""
    from cvgr.evaluate.autoattack import version_attacks

    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise UserError(f"n must be a whole number >= 1, got {n_images!r}")
    version_attacks(version, attacks)
    todo = [e for e in entries(names) if weights_file(e.name, zoo_dir).is_file()]
    if names and len(todo) < len(list(names)):
        missing = [e.name for e in entries(names) if e not in todo]
        locate(missing[0], zoo_dir)  # raises: not shipped yet
    return todo


def _measure(e: ZooEntry, key: dict[str, Any], zoo_dir: str | os.PathLike | None,
             dev: torch.device, data_root: str | os.PathLike | None, progress: bool,
             log: Any) -> dict[str, Any]:
    """Measure entry `e` as `key` says: clean and PGD(8) accuracy, stored at once, then
    AutoAttack, stored with the seconds all took."""
    from cvgr.checkpoint import load
    from cvgr.data import first_test_images
    from cvgr.devices import describe_device

    ef, eps, version = eval_file(e.name, zoo_dir), key["eps"], key["version"]
    model = load(weights_file(e.name, zoo_dir), dev)
    x, y = first_test_images(e.dataset, key["n_images"], data_root)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "name": e.name, **key, "images": {"split": "test", "first": 0, "count": len(x)},
        **_clean_and_pgd8(model, x, y, eps, dev),
        "device": describe_device(dev), "measured": utc_now(),
    }
    write_json(ef, res)
    log(f"zoo evaluate {e.name}: clean {res['clean_accuracy']:.4f}, PGD(8) "
        f"{res['pgd8']['accuracy']:.4f} at eps {eps:g}; AutoAttack {version} next")
    aa = _autoattack(model, x, y, eps, version, key["attacks"], progress)
    res["autoattack"] = aa
    res["seconds"] = round(time.perf_counter() - t0, 3)
    write_json(ef, res)
    log(f"zoo evaluate {e.name}: AutoAttack {version} {aa['robust_accuracy']:.4f} "
        f"({res['seconds']:.0f} s)")
    return res


def _clean_and_pgd8(model: nn.Module, x: Tensor, y: Tensor, eps: float,
                    dev: torch.device) -> dict[str, Any]:
    """Clean accuracy and white-box PGD(8) accuracy (one random start, seed 0, step
    1.85 eps / 8), as the evaluation JSON stores them."""
    import torch

    from cvgr.evaluate import accuracy, attack_batched

    gen = torch.Generator(device=dev).manual_seed(0)
    x_pgd = attack_batched(model, x, y, "pgd", eps, 256, gen, steps=8)
    return {"clean_accuracy": accuracy(model, x, y),
            "pgd8": {"accuracy": accuracy(model, x_pgd, y), "steps": 8, "restarts": 1,
                     "step_size": "1.85 * eps / steps", "random_start": True, "seed": 0}}


def _autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, version: str, attacks: Any,
                progress: bool) -> dict[str, Any]:
    """AutoAttack `version` (with `attacks` for custom), seed 0: its result record."""
    from cvgr.evaluate import autoattack

    aa = autoattack(model, x, y, eps, version=version, attacks=attacks, seed=0,
                    progress=progress)
    assert isinstance(aa, dict)
    return aa


def evaluate_further(name: str, attacks: str, *, seed: int = 1,
                     zoo_dir: str | os.PathLike | None = None, device: str | None = None,
                     data_root: str | os.PathLike | None = None, progress: bool = True,
                     log: Any = print) -> dict[str, Any]:
    """Attack the images that survived a model's stored standard AutoAttack again, with a
    custom attack list (e.g. ``"square:queries=10000"``, as AutoAttack's own flag advises),
    and store the per-image worst case over both in the model's evaluation JSON.

    Only the survivors need attacking: an image the standard version already fooled counts
    as fooled either way, so the result is the robust accuracy of the union of the two
    evaluations. Appended to ``"further"`` in the eval file; the table and docs show it.
    """
    import torch

    from cvgr.checkpoint import load
    from cvgr.data import first_test_images
    from cvgr.devices import describe_device, resolve_device
    from cvgr.evaluate import autoattack
    from cvgr.evaluate.autoattack import version_attacks

    specs = version_attacks("custom", attacks)
    wf, ef = locate(name, zoo_dir), eval_file(name, zoo_dir)
    ev = read_json(ef) if ef.is_file() else {}
    aa = ev.get("autoattack") or {}
    if ev.get("weights_sha256") != weights_digest(wf) or aa.get("version") != "standard":
        raise UserError(f"zoo:{entry(name).name} has no standard AutoAttack of its current "
                        f"weights to build on; run `cvgr zoo evaluate {entry(name).name}` first")
    dev = resolve_device(device)
    model = load(wf, dev)
    x, y = first_test_images(entry(name).dataset, ev["n_images"], data_root)
    survivors = torch.tensor(aa["robust_indices"], dtype=torch.long)
    t0 = time.perf_counter()
    if len(survivors):
        res = autoattack(model, x[survivors], y[survivors], ev["eps"], version="custom",
                         attacks=attacks, seed=seed, progress=progress)
        assert isinstance(res, dict)
        still = [int(survivors[i]) for i in res["robust_indices"]]
        detail: dict[str, Any] = {"attacks": res["attacks"], "flags": res["flags"],
                                  "libraries": res["libraries"]}
    else:
        still, detail = [], {"attacks": specs}
    row = {"attacks_spec": attacks, "seed": seed, "attacked": len(survivors),
           "worst_case_robust_accuracy": len(still) / ev["n_images"], "robust_indices": still,
           **detail, "device": describe_device(dev), "measured": utc_now(),
           "seconds": round(time.perf_counter() - t0, 3)}
    ev.setdefault("further", []).append(row)
    write_json(ef, ev)
    log(f"zoo evaluate {entry(name).name}: {attacks} (seed {seed}) on the {len(survivors)} "
        f"survivors of the standard AutoAttack: worst case {row['worst_case_robust_accuracy']:.4f}"
        f" (standard alone {aa['robust_accuracy']:.4f})")
    return row

