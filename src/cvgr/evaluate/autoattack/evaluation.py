"""`autoattack`: an AutoAttack version run on a model, attack after attack.

Every attack runs only on the images that all earlier attacks left classified correctly, so the
robust accuracy is the per-image worst case. A version's list is cut into calls
(:func:`segments`): the authors' standard version is one call (`cvgr.evaluate.autoattack.authors`),
each ART attack one call (`cvgr.evaluate.autoattack.art_attacks`), and a custom list of the
authors' attacks as few calls as their attack objects allow. The result records the version,
each attack's settings as run, the library versions, the seed, the robust accuracy after each
attack and which images survived.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.attacks import check_eps, check_norm
from cvgr.attacks.common import check_inputs, eval_mode
from cvgr.devices import model_device
from cvgr.errors import UserError
from cvgr.evaluate.autoattack.art_attacks import ArtAttacks
from cvgr.evaluate.autoattack.authors import AuthorsAttacks, require_autoattack
from cvgr.evaluate.autoattack.common import AttackRun
from cvgr.evaluate.autoattack.versions import check_classes, version_attacks
from cvgr.evaluate.curves import predict

__all__ = ["autoattack", "segments"]

# The objects of the authors' AutoAttack that run each attack: attacks sharing one object share
# its settings, so a custom list that sets them differently runs them in separate calls.
_OBJECT = {"apgd-ce": "apgd", "apgd-dlr": "apgd", "apgd-t": "apgd_targeted", "fab": "fab",
           "fab-t": "fab", "square": "square"}


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "linf",
               version: str = "standard", attacks: Any = None, batch_size: int = 250,
               seed: int = 0, progress: bool = True, return_examples: bool = False
               ) -> dict[str, Any] | tuple[dict[str, Any], Tensor]:
    """Run an AutoAttack version on (x, y); the result is a JSON-ready dict.

    `attacks` (only with version='custom') is a list of names or {'attack': name, **settings}
    dicts, or a string 'apgd-ce:steps=20,square:queries=100'; see AUTOATTACK_COMPONENTS for the
    names and their settings. With return_examples=True, also returns the adversarial images: for an
    image some attack fooled, the first example that fooled it; for the others the clean image.
    The caller's torch and NumPy random states are left as they were.
    """
    norm = check_norm(norm)
    check_inputs(x, y)
    if len(x) == 0:
        raise UserError("autoattack got no images", param="x")
    eps = check_eps(eps, norm, x[0].numel())
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}", param="batch_size")
    specs = version_attacks(version, attacks)
    libs = _require_libraries(specs)
    y = y.to(x.device)
    t_start = time.perf_counter()
    labels, logits = predict(model, x, batch_size)
    n_classes = int(logits.shape[1])
    if version == "standard" and n_classes < 10:
        raise UserError(f"the standard AutoAttack targets 9 classes, so it needs at least 10; "
                        f"this model has {n_classes}: use version='custom' with fewer targets")
    check_classes(specs, n_classes)
    dev = model_device(model)
    run = AttackRun(model, x, y, labels == y, eps=eps, norm=norm, seed=seed,
                    batch_size=batch_size, dev=dev)
    authors, art = AuthorsAttacks(run), ArtAttacks(run)
    forks = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    with _numpy_random_kept(), authors.listening(), torch.random.fork_rng(devices=forks), \
            eval_mode(model):
        for segment in _progress.bar(segments(specs), desc="autoattack", progress=progress):
            if segment is not None and segment[0]["library"] == "art":
                art.step(segment[0])
            else:
                authors.step(segment)
    res: dict[str, Any] = {
        "version": version, "norm": norm, "eps": eps, "n_images": len(x), "seed": int(seed),
        "clean_accuracy": (labels == y).float().mean().item(),
        "robust_accuracy": run.robust_accuracy(), "attacks": run.rows,
        "correct_indices": (labels == y).nonzero().squeeze(1).tolist(),
        "robust_indices": run.robust.nonzero().squeeze(1).tolist(),
        "flags": run.flags, "libraries": _library_versions(libs),
        "seconds": round(time.perf_counter() - t_start, 3), "device": str(dev),
    }
    return (res, run.x_adv) if return_examples else res


@contextmanager
def _numpy_random_kept() -> Iterator[None]:
    """NumPy's global random state as it was before (ART seeds and draws from it)."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def _require_libraries(specs: list[dict[str, Any]] | None) -> set[str]:
    """The libraries an attack list needs, each checked to be installed."""
    libs = {s["library"] for s in specs} if specs is not None else {"autoattack"}
    if "autoattack" in libs:
        require_autoattack()
    if "art" in libs:
        from cvgr.evaluate.art_bridge import require_art

        require_art()
    return libs


def segments(specs: list[dict[str, Any]] | None) -> list[list[dict[str, Any]] | None]:
    """The calls that run a version: None is the authors' standard version in one call; a custom
    list is cut where the library changes or an attack needs an object already set otherwise."""
    if specs is None:
        return [None]
    out: list[list[dict[str, Any]]] = []
    for spec in specs:
        last = out[-1] if out else None
        if last is None or spec["library"] == "art" or last[0]["library"] == "art" \
                or any(_clash(s, spec) for s in last):
            out.append([spec])
        else:
            last.append(spec)
    return list(out)


def _clash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two of the authors' attacks cannot run in one call with their settings."""
    if a["attack"] == b["attack"]:
        return True
    if _OBJECT[a["attack"]] != _OBJECT[b["attack"]]:
        return False
    keys = ("steps", "restarts", "targets")
    return {k: a.get(k) for k in keys} != {k: b.get(k) for k in keys}


def _library_versions(libs: set[str]) -> dict[str, str]:
    from cvgr.checkpoint import versions

    out = dict(versions())
    if "autoattack" in libs:
        import pyautoattack

        out["pyautoattack"] = str(pyautoattack.__version__)
    if "art" in libs:
        import art

        out["adversarial-robustness-toolbox"] = str(art.__version__)
    return out
