"""Robustness evaluation: curves, transfer matrices, gradient-masking checks, AutoAttack, plots.

Works on a model and tensors; the CLI and the reproduce command load data and checkpoints.
"""

from __future__ import annotations

from cvgr.evaluate.art_bridge import art_classifier, art_pgd
from cvgr.evaluate.autoattack import ATTACKS, VERSIONS, autoattack, parse_attacks
from cvgr.evaluate.curves import (
    MAX_EPS_POINTS,
    accuracy,
    attack_batched,
    check_eps_list,
    mean_loss,
    predict,
    robustness_curve,
)
from cvgr.evaluate.examples import load_examples, save_examples
from cvgr.evaluate.masking import format_checks, masking_checks, print_checks, transfer_flags
from cvgr.evaluate.plots import plot_curves, plot_matrix
from cvgr.evaluate.transfer import transfer_matrix

__all__ = [
    "ATTACKS",
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


def parse_eps(text: str) -> list[float]:
    """'0:0.3:0.02' (inclusive range), '0.1,0.2' or '0.1' -> a list of eps values."""
    import math

    from cvgr.errors import UserError

    try:
        if ":" in text:
            parts = [float(t) for t in text.split(":")]
            if len(parts) != 3 or not all(map(math.isfinite, parts)) or parts[2] <= 0 \
                    or parts[1] < parts[0]:
                raise ValueError
            start, stop, step = parts
            n = int(round((stop - start) / step))
            if n + 1 > MAX_EPS_POINTS:  # refuse before building a huge list
                raise UserError(f"eps {text!r} gives {n + 1} values, more than {MAX_EPS_POINTS};"
                                " use a larger step", param="eps")
            # 15 significant digits drop float noise (0.30000000000000004) at any scale;
            # rounding to a fixed number of decimals would merge a grid of tiny steps into 0
            vals = [float(f"{start + i * step:.15g}") for i in range(n + 1)]
            vals = [v for v in vals if v <= stop + step * 1e-6]
            if len(set(vals)) < len(vals):
                raise UserError(f"eps {text!r}: the step is too small to tell its values apart "
                                "at float precision; use a larger step", param="eps")
            return vals
        return [float(t) for t in text.split(",") if t.strip()]
    except UserError:
        raise
    except (ValueError, OverflowError):
        raise UserError(f"cannot read eps {text!r}; write START:STOP:STEP (e.g. 0:0.3:0.02), "
                        "a comma list (0.1,0.2) or one number", param="eps") from None
