"""The attacks by name: ``ATTACKS`` and `get`, for commands and plans that choose an attack
from a string."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from cvgr.attacks.fgsm import fgsm
from cvgr.attacks.nes import nes
from cvgr.attacks.pgd import pgd
from cvgr.errors import UserError
from cvgr.names import Attack

ATTACKS: dict[str, Callable[..., Tensor]] = {Attack.FGSM: fgsm, Attack.PGD: pgd, Attack.NES: nes}
"""Attack functions by name; each is called alike, as
fn(model, x, y, eps, generator=None, **options) (fgsm ignores the generator)."""


def get(name: str) -> Callable[..., Tensor]:
    """The attack function called `name` (case-insensitive); `UserError` naming `attack` if
    there is none."""
    try:
        return ATTACKS[name.lower()]
    except KeyError:
        raise UserError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}",
                        param="attack") from None
