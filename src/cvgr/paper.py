"""Numbers from the seed paper (Yeats, Chen, Li; ICML 2021) that cvgr shows beside its own,
each stated once here.

`PAPER_TIMES`: the supplement's training-time table, MNIST on an RTX 2070 Super, seconds of
the whole run for the six nets, keyed by the reproduction's model labels.
"""

from __future__ import annotations

__all__ = ["PAPER_TIMES", "PAPER_TIME_HARDWARE", "PAPER_TIME_LABELS", "PAPER_TIME_RATIOS"]

PAPER_TIME_HARDWARE = "RTX 2070 Super (MNIST)"
PAPER_TIMES: dict[str, int] = {"real-none": 253, "real-gr": 336, "real-pgd4": 585,
                               "real-pgd8": 921, "complex-none": 360, "complex-gr": 604}
PAPER_TIME_LABELS: dict[str, str] = {
    "real-none": "real, no defense", "real-gr": "real, GR", "real-pgd4": "real, PGD-4 AT",
    "real-pgd8": "real, PGD-8 AT", "complex-none": "complex, no defense",
    "complex-gr": "complex, GR"}
PAPER_TIME_RATIOS: dict[str, float] = {
    k: round(v / PAPER_TIMES["real-none"], 2) for k, v in PAPER_TIMES.items()
    if k != "real-none"}
"""The paper's times as ratios to real no defense (real-none itself, 1.0, is left out)."""
