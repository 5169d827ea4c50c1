"""Robustness evaluation: curves, transfer matrices, gradient-masking checks, AutoAttack, plots.

Works on a model and tensors; the CLI and the reproduce command load data and checkpoints.
"""

from __future__ import annotations

from cvgr.evaluate.art_bridge import art_classifier, art_pgd
from cvgr.evaluate.autoattack import AUTOATTACK_COMPONENTS, VERSIONS, autoattack, parse_attacks
from cvgr.evaluate.curves import (
    MAX_EPS_POINTS,
    accuracy,
    attack_batched,
    check_eps_list,
    mean_loss,
    parse_eps,
    predict,
    robustness_curve,
)
from cvgr.evaluate.examples import load_examples, save_examples
from cvgr.evaluate.masking import format_checks, masking_checks, print_checks, transfer_flags
from cvgr.evaluate.plots import plot_curves, plot_matrix
from cvgr.evaluate.transfer import transfer_matrix

__all__ = [
    "AUTOATTACK_COMPONENTS",
    "MAX_EPS_POINTS",
    "VERSIONS",
    "accuracy",
    "art_classifier",
    "art_pgd",
    "attack_batched",
    "autoattack",
    "check_eps_list",
    "format_checks",
    "load_examples",
    "masking_checks",
    "mean_loss",
    "parse_attacks",
    "parse_eps",
    "plot_curves",
    "plot_matrix",
    "predict",
    "print_checks",
    "robustness_curve",
    "save_examples",
    "transfer_flags",
    "transfer_matrix",
]

