"""Independent evaluation with the Adversarial Robustness Toolbox (ART), an optional extra.

Our own attacks could share a blind spot with our own models; a maintained library's attacks
give a second opinion (`autoattack(..., version="art")` runs ART's APGD-CE, APGD-DLR and
Square). ART is imported only when these functions are called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvgr.attacks import check_norm
from cvgr.attacks.common import eval_mode
from cvgr.devices import model_device
from cvgr.errors import UserError
from cvgr.evaluate.curves import predict

__all__ = ["art_classifier", "art_pgd", "require_art"]


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
