"""The ART version: the Adversarial Robustness Toolbox's APGD-CE, APGD-DLR and Square.

A second opinion from an independent code base (``cvgr[attack]``): each ART attack runs on the
images still robust, and every example it returns is checked (:meth:`AttackRun.confirm`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cvgr.evaluate.autoattack.common import AttackRun
from cvgr.evaluate.curves import predict

__all__ = ["ArtAttacks"]


class ArtAttacks:
    """The ART attacks of one evaluation, each on the images `run` still counts as robust."""

    def __init__(self, run: AttackRun) -> None:
        self.run = run
        self._classifier: Any = None  # ART's wrapper of the model, built on the first attack

    def step(self, spec: dict[str, Any]) -> None:
        """Run one ART attack (a parsed spec) and add its row."""
        run = self.run
        idx = run.robust.nonzero().squeeze(1)
        t0 = time.perf_counter()
        if len(idx) and run.eps > 0:
            adv = self._generate(spec, run.x[idx], run.y[idx])
            run.confirm(idx, adv, torch.ones(len(idx), dtype=torch.bool, device=idx.device))
        settings = {k: v for k, v in spec.items() if k not in ("attack", "library")}
        run.rows.append({"attack": spec["attack"], "library": "art", "settings": settings,
                         "attacked": int(len(idx)), "robust_accuracy": run.robust_accuracy(),
                         "seconds": round(time.perf_counter() - t0, 3)})

    def _generate(self, spec: dict[str, Any], xs: Tensor, ys: Tensor) -> Tensor:
        from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

        from cvgr.evaluate.art_bridge import art_classifier

        run = self.run
        if self._classifier is None:
            nb = int(predict(run.model, xs[:1])[1].shape[1])
            self._classifier = art_classifier(run.model, xs.shape[1:], nb)
        art_norm = np.inf if run.norm == "linf" else 2
        np.random.seed(run.seed)  # ART draws from NumPy's global state (restored by the caller)
        if spec["attack"] == "art-square":
            atk = SquareAttack(self._classifier, norm=art_norm, eps=run.eps,
                               max_iter=spec["queries"], batch_size=run.batch_size,
                               verbose=False)
        else:
            atk = AutoProjectedGradientDescent(
                self._classifier, norm=art_norm, eps=run.eps, eps_step=2 * run.eps,
                max_iter=spec["steps"], nb_random_init=spec["restarts"],
                batch_size=run.batch_size, verbose=False,
                loss_type="cross_entropy" if spec["attack"] == "art-apgd-ce"
                else "difference_logits_ratio")
        adv = atk.generate(xs.detach().cpu().numpy().astype(np.float32), ys.cpu().numpy())
        return torch.from_numpy(adv)
