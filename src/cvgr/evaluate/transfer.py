"""Transfer attacks: craft on each source model, evaluate every target (seed Figures 2-3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.attacks import check_eps, check_norm, check_options
from cvgr.attacks.common import check_count
from cvgr.evaluate.curves import AttackArg, accuracy, attack_batched, seeded_generator
from cvgr.evaluate.masking import transfer_flags

__all__ = ["transfer_matrix"]


def transfer_matrix(models: Mapping[str, nn.Module], x: Tensor, y: Tensor, eps: float,
                    steps: int = 8, *, attack: AttackArg = "pgd", norm: str = "linf",
                    batch_size: int = 256, seed: int = 0, progress: bool = True,
                    tolerance: float = 0.01, **kw: Any) -> dict[str, Any]:
    """Source-by-target accuracy: row i holds every model's accuracy on examples crafted on i.

    The diagonal is white-box. `kw` goes to the attack. The result carries each model's clean
    accuracy and the black-box masking check (a transfer beating white-box on its target).
    """
    if not models:
        raise ValueError("transfer_matrix needs at least one model")
    norm = check_norm(norm)
    eps = check_eps(eps, norm, x[0].numel() if len(x) else None)
    steps, batch_size = check_count(steps, "steps"), check_count(batch_size, "batch_size")
    kw = check_options(**kw)
    names = list(models)
    opts: dict[str, Any] = {"norm": norm, **kw}
    if attack != "fgsm":
        opts["steps"] = steps
    gen = seeded_generator(next(iter(models.values())), seed)
    rows = []
    for src in _progress.bar(names, desc="transfer sources", progress=progress):
        xa = attack_batched(models[src], x, y, attack, eps, batch_size, gen, **opts)
        rows.append([accuracy(models[t], xa, y, batch_size) for t in names])
    result: dict[str, Any] = {
        "attack": attack if isinstance(attack, str) else getattr(attack, "__name__", "custom"),
        "eps": eps, "steps": steps, "norm": norm, "n_images": len(x), "sources": names,
        "targets": names, "accuracy": rows,
        "clean_accuracy": {n: accuracy(models[n], x, y, batch_size) for n in names},
        "seed": int(seed),
    }
    result["masking"] = transfer_flags(result, tolerance)
    return result
