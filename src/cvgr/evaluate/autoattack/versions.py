"""The AutoAttack versions and the attack lists they are made of, parsed and checked.

A version is an ordered list of attacks: ``standard`` is the authors' own configuration (no
list here: their implementation knows it), ``art`` is ART's APGD-CE, APGD-DLR and Square, and
``custom`` is any list of :data:`AUTOATTACK_COMPONENTS` with their settings, given as a string
``'apgd-ce:steps=20,square:queries=100'`` or a list of names and dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cvgr.errors import UserError

__all__ = ["ART_VERSION", "AUTOATTACK_COMPONENTS", "MAX_SETTING", "VERSIONS", "check_classes",
           "parse_attacks", "version_attacks"]

VERSIONS = ("standard", "art", "custom")

# The components an AutoAttack is made of (not cvgr.attacks.ATTACKS, cvgr's own attacks):
# attack name -> (library, {setting: default}); the defaults of the authors' attacks are the
# standard version's values, those of ART's are the `art` version's.
AUTOATTACK_COMPONENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "apgd-ce": ("autoattack", {"steps": 100, "restarts": 1}),
    "apgd-dlr": ("autoattack", {"steps": 100, "restarts": 1}),
    "apgd-t": ("autoattack", {"steps": 100, "restarts": 1, "targets": 9}),
    "fab": ("autoattack", {"steps": 100, "restarts": 1}),
    "fab-t": ("autoattack", {"steps": 100, "targets": 9}),  # the authors run it with 1 restart
    "square": ("autoattack", {"queries": 5000, "p_init": 0.8}),
    "art-apgd-ce": ("art", {"steps": 100, "restarts": 1}),
    "art-apgd-dlr": ("art", {"steps": 100, "restarts": 1}),
    "art-square": ("art", {"queries": 1000}),
}

ART_VERSION = ("art-apgd-ce", "art-apgd-dlr", "art-square")
"""The attacks of the `art` version, in order, with their default settings."""

MAX_SETTING = 1_000_000
"""The largest count (steps, restarts, queries, targets) an attack takes: more is a typo."""


def parse_attacks(spec: str | Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Attack list -> [{'attack': name, **settings}] with every setting filled and checked.

    A string is a comma list of NAME[:KEY=VALUE[:KEY=VALUE...]], e.g.
    'apgd-ce:steps=20,square:queries=100'.
    """
    items: list[str | Mapping[str, Any]]
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    elif isinstance(spec, list | tuple) and all(isinstance(i, str | Mapping) for i in spec):
        items = list(spec)
    else:
        raise UserError(f"attacks must be a string like 'apgd-ce:steps=20,square:queries=100' "
                        f"or a list of such names or dicts, got {spec!r}"[:300], param="attacks")
    if not items:
        raise UserError("a custom AutoAttack needs at least one attack, e.g. "
                        "'apgd-ce:steps=20,square:queries=100'")
    return [_parse_one(it) for it in items]


def _parse_one(item: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, str):
        name, *kvs = item.split(":")
        given: dict[str, Any] = {}
        for kv in kvs:
            key, sep, text = kv.partition("=")
            if not sep:
                raise UserError(f"cannot read attack setting {kv!r} in {item!r}; write KEY=VALUE")
            given[key.strip().replace("-", "_")] = text.strip()
    else:
        given = dict(item)
        name = str(given.pop("attack", given.pop("name", "")))
    name = name.strip().lower()
    if name not in AUTOATTACK_COMPONENTS:
        raise UserError(f"unknown attack {name!r}; choose from "
                        f"{', '.join(AUTOATTACK_COMPONENTS)}")
    library, defaults = AUTOATTACK_COMPONENTS[name]
    unknown = set(given) - set(defaults)
    if unknown:
        raise UserError(f"attack {name} has no setting(s) {sorted(unknown)}; it takes "
                        f"{', '.join(defaults)}")
    out: dict[str, Any] = {"attack": name, "library": library}
    for key, default in defaults.items():
        out[key] = _setting(name, key, given.get(key, default), isinstance(default, float))
    return out


def _setting(name: str, key: str, raw: Any, real: bool) -> float | int:
    """One attack setting, checked: p_init in (0, 1], a count a whole number in 1..MAX_SETTING."""
    try:
        val = float(raw)
    except (TypeError, ValueError):
        raise UserError(f"attack {name}: {key} must be a number, got {raw!r}") from None
    if isinstance(raw, bool) or not math.isfinite(val):
        raise UserError(f"attack {name}: {key} must be a finite number, got {raw!r}")
    if real:
        if not 0 < val <= 1:
            raise UserError(f"attack {name}: {key} = {raw} is out of range (0 < {key} <= 1)")
        return val
    if val != int(val) or not 1 <= val <= MAX_SETTING:
        raise UserError(f"attack {name}: {key} = {raw} is out of range (give a whole number "
                        f"from 1 to {MAX_SETTING})")
    return int(val)


def version_attacks(version: str, attacks: Any = None) -> list[dict[str, Any]] | None:
    """The attack list of a version (None for `standard`: the authors' own configuration)."""
    if version not in VERSIONS:
        raise UserError(f"unknown AutoAttack version {version!r}; choose from "
                        f"{', '.join(VERSIONS)}", param="version")
    if version != "custom" and attacks is not None:
        raise UserError(f"attacks are chosen by version={version!r}; pass them with "
                        "version='custom'", param="attacks")
    if version == "standard":
        return None
    if version == "art":
        return parse_attacks(list(ART_VERSION))
    if attacks is None:
        raise UserError("version='custom' needs attacks, e.g. "
                        "'apgd-ce:steps=20,square:queries=100'", param="attacks")
    return parse_attacks(attacks)


def check_classes(specs: list[dict[str, Any]] | None, n_classes: int) -> None:
    """Refuse an attack list the model's number of classes cannot serve (too many targets, DLR
    with fewer than 3 classes) with a one-line UserError."""
    for s in specs or []:
        if s.get("targets", 0) > n_classes - 1:
            raise UserError(f"attack {s['attack']}: {s['targets']} target classes but the model "
                            f"has {n_classes} classes; give targets <= {n_classes - 1}")
        if "dlr" in s["attack"] and n_classes < 3:
            raise UserError(f"attack {s['attack']} needs at least 3 classes; drop it")
