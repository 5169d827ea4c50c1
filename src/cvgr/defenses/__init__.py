"""Defenses: input-gradient regularization (exact, reference, finite difference), Gaussian
noise augmentation, adversarial training batches and TRADES. Each works on a model and tensors
only."""

from cvgr.defenses.adversarial import adversarial_batch
from cvgr.defenses.gradient_penalty import (
    DEFAULT_FD_STEP,
    GRLoss,
    gradient_regularized_loss,
    input_gradient_penalty,
)
from cvgr.defenses.noise import gaussian_noise
from cvgr.defenses.trades import TradesLoss, trades_batch, trades_loss

__all__ = [
    "DEFAULT_FD_STEP",
    "GRLoss",
    "TradesLoss",
    "adversarial_batch",
    "gaussian_noise",
    "gradient_regularized_loss",
    "input_gradient_penalty",
    "trades_batch",
    "trades_loss",
]
