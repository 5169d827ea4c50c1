"""Seeds derived from a run's seed: one function, so every stream is defined in one place."""

from __future__ import annotations

import numpy as np

__all__ = ["DATA_STREAM", "TRAINER_STREAM", "epoch_seed"]

DATA_STREAM = None
"""The data loader's stream (order and augmentation): entropy (seed, epoch)."""
TRAINER_STREAM = 0x7A11
"""The trainer's own draws (noise, attack starts): entropy (seed, epoch, 0x7A11)."""


def epoch_seed(seed: int, epoch: int, stream: int | None = DATA_STREAM) -> int:
    """A well-mixed 63-bit seed for (seed, epoch[, stream]): nearby epochs, and different
    streams of one epoch, get unrelated generators."""
    entropy = [int(seed) & (2**63 - 1), int(epoch)]
    if stream is not None:
        entropy.append(int(stream))
    state = np.random.SeedSequence(entropy).generate_state(2)
    return (int(state[0]) << 31 ^ int(state[1])) & (2**63 - 1)
