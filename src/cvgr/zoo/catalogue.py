"""The zoo's catalogue: its entries, where their weights and evaluations lie, and the check
that weights are the ones the zoo measured.

Low in the layers (it imports only cvgr.errors and cvgr.io at module level; an entry's
`config()` builds its TrainConfig when asked): `cvgr.load` and the evaluation commands resolve
``zoo:NAME`` through `resolve` here, below training, evaluation and the rest of the zoo.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvgr.errors import RunError, UserError
from cvgr.io import read_json

__all__ = ["CATALOGUE", "ENV", "PACKAGE_ROOT", "ZooEntry", "entries", "entry", "eval_file",
           "is_zoo_name", "locate", "resolve", "zoo_directory", "verified", "weights_digest",
           "weights_file"]

ENV = "CVGR_ZOO_DIR"
PACKAGE_ROOT = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: a name and the `cvgr train` settings that make it."""

    name: str  # "<dataset>/<short name>"
    summary: str
    settings: dict[str, Any] = field(hash=False)  # TrainConfig fields besides the dataset

    @property
    def dataset(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def short(self) -> str:
        return self.name.split("/", 1)[1]

    def config(self) -> Any:
        """The resolved TrainConfig (recipe defaults filled in)."""
        from cvgr.train.config import TrainConfig

        return TrainConfig(dataset=self.dataset, **self.settings).resolved()

    def command(self, out: str | os.PathLike) -> str:
        return "cvgr train " + " ".join(self.config().argv()) + f" --out {out}"


def _entries() -> dict[str, ZooEntry]:
    v0 = {"arch": "MNISTNetV0"}
    v1 = {"arch": "MNISTNetV1", "complex": True}
    grf = {"beta": 64.0, "noise": 0.05}
    grm = {"beta": 512.0}
    trades = {"trades": 6.0, "adv_eps": 0.1, "adv_steps": 10}
    fm, mn = "fashion-mnist", "mnist-10k"
    rows: list[tuple[str, str, dict[str, Any]]] = [
        (f"{fm}/complex-gr", "complex, GR beta 64 + noise 0.05", {**v1, **grf}),
        (f"{fm}/real-gr", "real, GR beta 64 + noise 0.05", {**v0, **grf}),
        (f"{mn}/complex-gr", "complex, GR beta 512", {**v1, **grm}),
        (f"{mn}/real-gr", "real, GR beta 512", {**v0, **grm}),
        (f"{mn}/complex-none", "complex, no defense", dict(v1)),
        (f"{mn}/real-none", "real, no defense", dict(v0)),
        (f"{fm}/real-none", "real, no defense", dict(v0)),
        (f"{fm}/complex-none", "complex, no defense", dict(v1)),
        (f"{fm}/real-pgd4", "real, PGD-4 adversarial training at eps 0.1",
         {**v0, "adv_eps": 0.1, "adv_steps": 4}),
        (f"{fm}/complex-gr-reference", "complex GR, the published code's truncated pass",
         {**v1, **grf, "gr_mode": "reference"}),
        (f"{fm}/complex-gr-fd", "complex GR, finite-difference penalty",
         {**v1, **grf, "gr_mode": "fd"}),
        (f"{fm}/complex-gr-seed1", "complex GR, seed 1", {**v1, **grf, "seed": 1}),
        (f"{fm}/complex-gr-seed2", "complex GR, seed 2", {**v1, **grf, "seed": 2}),
        # the full MNIST at the paper's recipe: complex-gr and its seeds 1 and 2 are the
        # seed's nets A, B and C (Figure 2)
        ("mnist/complex-gr", "complex, GR beta 512 (net A)", {**v1, **grm}),
        ("mnist/complex-gr-seed1", "complex GR beta 512, seed 1 (net B)",
         {**v1, **grm, "seed": 1}),
        ("mnist/complex-gr-seed2", "complex GR beta 512, seed 2 (net C)",
         {**v1, **grm, "seed": 2}),
        ("mnist/real-gr", "real, GR beta 512", {**v0, **grm}),
        ("mnist/real-none", "real, no defense", dict(v0)),
        ("mnist/complex-none", "complex, no defense", dict(v1)),
        ("mnist/real-pgd4", "real, PGD-4 adversarial training at eps 0.3",
         {**v0, "adv_eps": 0.3, "adv_steps": 4}),
        # the field's standard defenses at the paper's recipe (issue 18): Madry-style PGD-10 AT,
        # TRADES at its published beta 6 and 10 inner steps, AT on the complex net, and GR
        # combined with PGD-4 AT (the penalty on the adversarial loss)
        (f"{fm}/real-pgd10", "real, PGD-10 adversarial training at eps 0.1",
         {**v0, "adv_eps": 0.1, "adv_steps": 10}),
        (f"{fm}/real-trades", "real, TRADES beta 6 at eps 0.1 (10 inner steps)",
         {**v0, **trades}),
        (f"{fm}/complex-pgd4", "complex, PGD-4 adversarial training at eps 0.1",
         {**v1, "adv_eps": 0.1, "adv_steps": 4}),
        (f"{fm}/complex-trades", "complex, TRADES beta 6 at eps 0.1 (10 inner steps)",
         {**v1, **trades}),
        (f"{fm}/complex-gr-pgd4", "complex, GR beta 64 + PGD-4 adversarial training at eps 0.1",
         {**v1, "beta": 64.0, "adv_eps": 0.1, "adv_steps": 4}),
    ]
    return {n: ZooEntry(n, s, kw) for n, s, kw in rows}


CATALOGUE: dict[str, ZooEntry] = _entries()


# -- where things are -------------------------------------------------------------------------

def zoo_directory(zoo_dir: str | os.PathLike | None = None) -> Path:
    """The zoo's weights directory: `zoo_dir`, else $CVGR_ZOO_DIR, else the package's."""
    if zoo_dir is not None:
        return Path(zoo_dir)
    env = os.environ.get(ENV)
    return Path(env) if env else PACKAGE_ROOT


def entries(names: Iterable[str] | None = None) -> list[ZooEntry]:
    """Entries by name (all, in catalogue order, for None or an empty list)."""
    names = list(names or [])
    return [entry(n) for n in names] if names else list(CATALOGUE.values())


def entry(name: str) -> ZooEntry:
    name = name.removeprefix("zoo:")
    if name not in CATALOGUE:
        raise UserError(f"no zoo model {name!r}; the zoo has {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def weights_file(name: str, zoo_dir: str | os.PathLike | None = None) -> Path:
    e = entry(name)
    return zoo_directory(zoo_dir) / e.dataset / f"{e.short}.safetensors"


def eval_file(name: str, zoo_dir: str | os.PathLike | None = None) -> Path:
    e = entry(name)
    return zoo_directory(zoo_dir) / e.dataset / f"{e.short}.eval.json"


def locate(name: str, zoo_dir: str | os.PathLike | None = None) -> Path:
    """The weights file of a zoo model, or a one-line UserError saying how to get it."""
    p = weights_file(name, zoo_dir)
    if not p.is_file():
        e = entry(name)
        raise UserError(f"zoo:{e.name} is not shipped yet (no {p}); train it with `cvgr zoo "
                        f"train {e.name}` and copy it into the zoo with `cvgr zoo publish`")
    return p


def verified(name: str, zoo_dir: str | os.PathLike | None = None) -> Path:
    """The weights file of a zoo model, checked against the sha256 its evaluation records:
    weights changed after they were measured are not run under the zoo's name. (A model
    published but not measured yet has no evaluation to check against; `cvgr zoo` shows it
    as not measured.)"""
    p, ef = locate(name, zoo_dir), eval_file(name, zoo_dir)
    if not ef.exists():
        return p
    try:
        want = read_json(ef).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        want = None
    if not isinstance(want, str):
        raise RunError(f"zoo:{entry(name).name}: {ef} records no sha256 of its weights (damaged?), "
                       "so they cannot be checked; reinstall cvgr")
    if weights_digest(p) != want:
        raise RunError(f"zoo:{entry(name).name}: {p} does not match the sha256 of the weights "
                       "the zoo measured; the file was changed or damaged: reinstall cvgr "
                       f"(new weights you published: `cvgr zoo evaluate {entry(name).name}`)")
    return p


def is_zoo_name(path: str | os.PathLike) -> bool:
    """Whether `path` names a zoo model ("zoo:NAME") rather than a file or directory."""
    return isinstance(path, str) and path.startswith("zoo:")


def resolve(path: str | os.PathLike) -> str | os.PathLike:
    """ "zoo:NAME" -> its weights file, checked (`verified`); any other path unchanged."""
    if is_zoo_name(path):
        return verified(str(path))
    return path


def weights_digest(path: str | os.PathLike) -> str:
    """The sha256 of the weights alone (names, dtypes, shapes, values), not of the record: a
    model published again with a new record keeps its evaluation."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for k, t in sorted(load_file(str(path)).items()):
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()
