"""Adversarial attacks on any model that maps [0, 1] images to logits.

Attacks know nothing of datasets or training: they take a model, images x in [0, 1] shaped
(N, ...) and integer labels y (N,), and return adversarial images in [0, 1] inside the
eps-ball. Each puts the model in eval mode and restores its mode afterwards.

One file per attack, one public API each: a function (Args / Shape / Example in its
docstring), called as ``pgd(model, x, y, eps, steps=8, generator=gen)``.
"""

from __future__ import annotations

from cvgr.attacks.common import NORMS, check_eps, check_norm, check_options
from cvgr.attacks.fgsm import fgsm
from cvgr.attacks.nes import nes, nes_gradient
from cvgr.attacks.pgd import STEP_FACTOR, pgd
from cvgr.attacks.registry import ATTACKS, get

__all__ = ["ATTACKS", "NORMS", "STEP_FACTOR", "check_eps", "check_norm",
           "check_options",
           "fgsm", "get", "nes", "nes_gradient", "pgd"]
