"""The names of modes and kinds, each defined once (StrEnum: members are their strings, so
configs, JSON files and command lines keep plain text)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AdvKind", "Attack", "DefensePart", "GRMode", "SecondOrder", "defense_name",
           "is_one_of"]


class GRMode(StrEnum):
    """How the gradient penalty's second derivatives are taken (docs/method.md, section 4)."""

    EXACT = "exact"  # double backpropagation, every derivative exact
    REFERENCE = "reference"  # the published code's truncated second pass
    FD = "fd"  # finite-difference double backpropagation (Finlay & Oberman)


class SecondOrder(StrEnum):
    """A complex layer's second-order behaviour (the two GR modes that backpropagate twice)."""

    EXACT = "exact"
    REFERENCE = "reference"


class AdvKind(StrEnum):
    """How adversarial-training batches are made."""

    PGD = "pgd"
    FGSM = "fgsm"


class Attack(StrEnum):
    """The attacks `cvgr attack` and the evaluations run."""

    FGSM = "fgsm"
    PGD = "pgd"
    NES = "nes"


class DefensePart(StrEnum):
    """The parts a defense name is made of: ``pgd8+gr``, ``gr+noise``, ``fgsm``, ``trades10``,
    ``none``."""

    NONE = "none"
    GR = "gr"
    NOISE = "noise"
    FGSM = "fgsm"
    PGD = "pgd"
    TRADES = "trades"


def is_one_of(value: object, names: type[StrEnum]) -> bool:
    """Whether `value` is one of the strings of `names` (False, not TypeError, for a non-str)."""
    return value in tuple(names)


def defense_name(*, beta: float = 0.0, noise: float = 0.0, adv_eps: float = 0.0,
                 adv_steps: int = 4, adv_kind: str = AdvKind.PGD,
                 gr_mode: str = GRMode.EXACT, trades: float = 0.0) -> str:
    """The one short name of a defense: none, gr, noise, gr+noise, pgd4, fgsm, pgd8+gr, gr-fd,
    trades10...

    Adversarial training (or TRADES, with its inner steps) first, then GR (``gr-MODE`` unless
    exact), then noise.
    """
    parts: list[str] = []
    if adv_eps > 0 and trades > 0:
        parts.append(f"{DefensePart.TRADES}{adv_steps}")
    elif adv_eps > 0:
        parts.append(DefensePart.FGSM if adv_kind == AdvKind.FGSM
                     else f"{DefensePart.PGD}{adv_steps}")
    if beta > 0:
        parts.append(DefensePart.GR if gr_mode == GRMode.EXACT else f"{DefensePart.GR}-{gr_mode}")
    if noise > 0:
        parts.append(DefensePart.NOISE)
    return "+".join(str(p) for p in parts) or str(DefensePart.NONE)
