"""Independent evaluation with the Adversarial Robustness Toolbox (ART), an optional extra.

Our own attacks could share a blind spot with our own models; a maintained library's
AutoAttack-grade attacks (APGD with cross-entropy and with the DLR loss, and the query-only
Square attack) give a second opinion. ART is imported only when these functions are called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from cvgr.attacks import check_eps, check_norm
from cvgr.attacks.common import eval_mode, project
from cvgr.errors import UserError
from cvgr.evaluate.curves import model_device, predict

__all__ = ["AUTOATTACK_PARTS", "art_classifier", "art_pgd", "autoattack", "require_art"]

AUTOATTACK_PARTS = ("apgd-ce", "apgd-dlr", "square")


def require_art() -> Any:
    """Import ART or raise a one-line UserError saying how to install it."""
    try:
        import art  # noqa: F401
        from art.estimators.classification import PyTorchClassifier  # noqa: F401
    except ImportError:
        raise UserError("this needs the Adversarial Robustness Toolbox; install it with "
                        "`pip install cvgr[attack]`") from None
    import art

    return art


def art_classifier(model: nn.Module, input_shape: Sequence[int], nb_classes: int) -> Any:
    """Wrap a logits model taking [0, 1] images as an ART PyTorchClassifier."""
    require_art()
    from art.estimators.classification import PyTorchClassifier

    dev = model_device(model)
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(),
                             input_shape=tuple(input_shape), nb_classes=int(nb_classes),
                             clip_values=(0.0, 1.0),
                             device_type="gpu" if dev.type == "cuda" else "cpu")


def _nb_classes(model: nn.Module, x: Tensor) -> int:
    return int(predict(model, x[:1])[1].shape[1])


def art_pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int,
            step_size: float, *, random_start: bool = False, norm: str = "linf",
            batch_size: int = 256) -> Tensor:
    """ART's ProjectedGradientDescent with our settings, for comparisons and the benchmark."""
    require_art()
    from art.attacks.evasion import ProjectedGradientDescent

    norm = check_norm(norm)
    clf = art_classifier(model, x.shape[1:], _nb_classes(model, x))
    atk = ProjectedGradientDescent(clf, norm=np.inf if norm == "linf" else 2, eps=eps,
                                   eps_step=step_size, max_iter=steps,
                                   num_random_init=1 if random_start else 0,
                                   batch_size=batch_size, verbose=False)
    with eval_mode(model):
        adv = atk.generate(x.detach().cpu().numpy().astype(np.float32), y.cpu().numpy())
    return torch.from_numpy(adv).to(x.device, x.dtype)


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "linf",
               parts: Sequence[str] = AUTOATTACK_PARTS, apgd_steps: int = 100,
               apgd_restarts: int = 1, square_queries: int = 1000, batch_size: int = 128,
               seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Worst case per image over ART's APGD-CE, APGD-DLR and Square, AutoAttack style.

    Each attack runs only on the images still classified correctly, so the final robust
    accuracy is that of the worst attack per image. Returned examples are re-projected onto
    the eps-ball and [0, 1] before counting, so a library bug cannot inflate the attack.
    NumPy's global random state (which ART uses) is seeded and restored afterwards.
    """
    require_art()
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

    norm = check_norm(norm)
    eps = check_eps(eps, norm, x[0].numel() if len(x) else None)
    unknown = set(parts) - set(AUTOATTACK_PARTS)
    if unknown:
        raise UserError(f"unknown autoattack part(s) {sorted(unknown)}; choose from "
                        f"{', '.join(AUTOATTACK_PARTS)}")
    if len(x) == 0:
        raise UserError("autoattack got no images; check --limit")
    y = y.to(x.device)
    robust = predict(model, x, batch_size)[0] == y
    clean = robust.float().mean().item()
    nb = _nb_classes(model, x)
    if "apgd-dlr" in parts and nb < 3:
        raise UserError("APGD-DLR needs at least 3 classes; drop apgd-dlr from the parts")
    clf = art_classifier(model, x.shape[1:], nb)
    art_norm = np.inf if norm == "linf" else 2
    step = 2 * eps  # APGD's initial step, as in AutoAttack; it adapts from there
    rows: list[dict[str, Any]] = []
    state = np.random.get_state()
    np.random.seed(int(seed))
    try:
        with eval_mode(model):
            for part in tqdm(list(parts), desc="autoattack", disable=not progress, leave=False):
                idx = robust.nonzero().squeeze(1)
                if len(idx) and eps > 0:
                    if part == "square":
                        atk = SquareAttack(clf, norm=art_norm, eps=eps, max_iter=square_queries,
                                           batch_size=batch_size, verbose=False)
                    else:
                        atk = AutoProjectedGradientDescent(
                            clf, norm=art_norm, eps=eps, eps_step=step, max_iter=apgd_steps,
                            nb_random_init=apgd_restarts, batch_size=batch_size,
                            loss_type="cross_entropy" if part == "apgd-ce"
                            else "difference_logits_ratio", verbose=False)
                    xs = x[idx]
                    adv = atk.generate(xs.detach().cpu().numpy().astype(np.float32),
                                       y[idx].cpu().numpy())
                    adv_t = project(torch.from_numpy(adv).to(x.device, x.dtype), xs, eps, norm)
                    still = predict(model, adv_t, batch_size)[0] == y[idx]
                    robust[idx] = still
                rows.append({"attack": part, "robust_accuracy": robust.float().mean().item(),
                             "attacked": int(len(idx))})
    finally:
        np.random.set_state(state)
    import art

    return {"eps": eps, "norm": norm, "n": len(x), "clean_accuracy": clean,
            "robust_accuracy": robust.float().mean().item(), "attacks": rows,
            "settings": {"apgd_steps": apgd_steps, "apgd_restarts": apgd_restarts,
                         "square_queries": square_queries, "seed": int(seed)},
            "library": f"adversarial-robustness-toolbox {art.__version__}"}
