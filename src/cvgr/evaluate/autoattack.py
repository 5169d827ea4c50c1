"""AutoAttack: the authors' standard version, ART's independent subset, or a custom list.

Versions (each an ordered list of attacks; every attack runs only on the images that all
earlier attacks left classified correctly, so the robust accuracy is the per-image worst case):

- ``standard``: AutoAttack exactly as its authors define it, run by their own implementation
  (the ``pyautoattack`` package, optional extra ``cvgr[autoattack]``): APGD-CE (100 iterations,
  1 restart), APGD-T (9 target classes), FAB-T (9 target classes), Square (5000 queries).
- ``art``: the Adversarial Robustness Toolbox's APGD-CE, APGD-DLR (100 iterations, 1 restart)
  and Square (1000 queries), a second opinion from an independent code base (``cvgr[attack]``).
- ``custom``: any list of attacks from both libraries with their settings, e.g.
  ``["apgd-ce", {"attack": "square", "queries": 100}]``.

Every example an attack returns is projected back onto the eps-ball and [0, 1] and the model
is asked again, so a library bug cannot inflate an attack. The result records the version,
each attack's settings as run, the library versions, the seed, the robust accuracy after each
attack and which images survived.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.attacks import check_eps, check_norm
from cvgr.attacks.common import check_inputs, eval_mode, project
from cvgr.errors import UserError
from cvgr.evaluate.curves import model_device, predict

__all__ = ["ATTACKS", "VERSIONS", "autoattack", "parse_attacks", "require_autoattack",
           "version_attacks"]

VERSIONS = ("standard", "art", "custom")

# attack name -> (library, {setting: default}); the defaults of the authors' attacks are the
# standard version's values, those of ART's are the `art` version's.
ATTACKS: dict[str, tuple[str, dict[str, Any]]] = {
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

_ART_VERSION = ("art-apgd-ce", "art-apgd-dlr", "art-square")
_NORMS = {"linf": "Linf", "l2": "L2"}


def require_autoattack() -> Any:
    """Import the authors' AutoAttack (pyautoattack) or raise a one-line UserError."""
    try:
        import pyautoattack
    except ImportError:
        raise UserError("the standard AutoAttack needs the authors' implementation; install it "
                        "with `pip install cvgr[autoattack]` (package pyautoattack), or use "
                        "version='art'") from None
    return pyautoattack


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
    if name not in ATTACKS:
        raise UserError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    library, defaults = ATTACKS[name]
    unknown = set(given) - set(defaults)
    if unknown:
        raise UserError(f"attack {name} has no setting(s) {sorted(unknown)}; it takes "
                        f"{', '.join(defaults)}")
    out: dict[str, Any] = {"attack": name, "library": library}
    for key, default in defaults.items():
        out[key] = _setting(name, key, given.get(key, default), isinstance(default, float))
    return out


MAX_SETTING = 1_000_000
"""The largest count (steps, restarts, queries, targets) an attack takes: more is a typo."""


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
        return parse_attacks(list(_ART_VERSION))
    if attacks is None:
        raise UserError("version='custom' needs attacks, e.g. "
                        "'apgd-ce:steps=20,square:queries=100'", param="attacks")
    return parse_attacks(attacks)


class _FlagLog(logging.Handler):
    """Collects the warnings of the authors' automatic checks (zero gradients, randomness)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


def _require_libraries(specs: list[dict[str, Any]] | None) -> set[str]:
    """The libraries an attack list needs, each checked to be installed."""
    libs = {s["library"] for s in specs} if specs is not None else {"autoattack"}
    if "autoattack" in libs:
        require_autoattack()
    if "art" in libs:
        from cvgr.evaluate.art_bridge import require_art

        require_art()
    return libs


def _attack_step(runner: _Runner, spec: dict[str, Any], model: nn.Module, x: Tensor, y: Tensor,
                 x_adv: Tensor, robust: Tensor, batch_size: int) -> dict[str, Any]:
    """One attack of the list on the images still robust; updates x_adv and robust in place
    and returns its row of the result."""
    idx = robust.nonzero().squeeze(1)
    t0 = time.perf_counter()
    settings = runner.configure(spec)
    if len(idx) and runner.eps > 0:
        xs, ys = x[idx], y[idx]
        adv = runner.run(spec, xs, ys)
        adv = project(adv.to(x.device, x.dtype), xs, runner.eps, runner.norm)
        fooled = predict(model, adv, batch_size)[0] != ys
        x_adv[idx[fooled]] = adv[fooled]
        robust[idx[fooled]] = False
    return {"attack": spec["attack"], "library": spec["library"], "settings": settings,
            "attacked": int(len(idx)), "robust_accuracy": robust.float().mean().item(),
            "seconds": round(time.perf_counter() - t0, 3)}


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "linf",
               version: str = "standard", attacks: Any = None, batch_size: int = 250,
               seed: int = 0, progress: bool = True, return_examples: bool = False
               ) -> dict[str, Any] | tuple[dict[str, Any], Tensor]:
    """Run an AutoAttack version on (x, y); the result is a JSON-ready dict.

    `attacks` (only with version='custom') is a list of names or {'attack': name, **settings}
    dicts, or a string 'apgd-ce:steps=20,square:queries=100'; see ATTACKS for the names and
    their settings. With return_examples=True, also returns the adversarial images: for an
    image some attack fooled, the first example that fooled it; for the others the clean image.
    The caller's torch and NumPy random states are left as they were.
    """
    norm = check_norm(norm)
    check_inputs(x, y)
    if len(x) == 0:
        raise UserError("autoattack got no images", param="x")
    eps = check_eps(eps, norm, x[0].numel())
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}", param="batch_size")
    specs = version_attacks(version, attacks)
    libs = _require_libraries(specs)
    y = y.to(x.device)
    t_start = time.perf_counter()
    labels, logits = predict(model, x, batch_size)
    n_classes = int(logits.shape[1])
    if version == "standard" and n_classes < 10:
        raise UserError(f"the standard AutoAttack targets 9 classes, so it needs at least 10; "
                        f"this model has {n_classes}: use version='custom' with fewer targets")
    _check_classes(specs, n_classes)
    robust = labels == y
    clean = robust.float().mean().item()
    x_adv = x.detach().clone()
    dev = model_device(model)
    flags = _FlagLog()
    rows: list[dict[str, Any]] = []
    forks = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    np_state = np.random.get_state()
    aa_log = logging.getLogger("auto-attack")  # the authors' checks warn here
    log_state = (aa_log.handlers, aa_log.propagate)
    aa_log.handlers, aa_log.propagate = [flags], False
    try:
        with torch.random.fork_rng(devices=forks), eval_mode(model):
            runner = _Runner(model, eps, norm, seed, batch_size, dev, flags)
            plan = runner.standard_plan() if specs is None else specs
            for spec in _progress.bar(plan, desc="autoattack", progress=progress):
                rows.append(_attack_step(runner, spec, model, x, y, x_adv, robust, batch_size))
        if specs is None:
            from pyautoattack import checks

            checks.check_square_sr({"clean": clean, **{r["attack"]: r["robust_accuracy"]
                                                       for r in rows}}, logger=aa_log)
    finally:
        np.random.set_state(np_state)
        aa_log.handlers, aa_log.propagate = log_state
    res: dict[str, Any] = {
        "version": version, "norm": norm, "eps": eps, "n": len(x), "seed": int(seed),
        "clean_accuracy": clean, "robust_accuracy": robust.float().mean().item(),
        "attacks": rows,
        "correct_indices": (labels == y).nonzero().squeeze(1).tolist(),
        "robust_indices": robust.nonzero().squeeze(1).tolist(),
        "flags": flags.messages, "libraries": _library_versions(libs),
        "seconds": round(time.perf_counter() - t_start, 3), "device": str(dev),
    }
    return (res, x_adv) if return_examples else res


def _check_classes(specs: list[dict[str, Any]] | None, n_classes: int) -> None:
    for s in specs or []:
        if s.get("targets", 0) > n_classes - 1:
            raise UserError(f"attack {s['attack']}: {s['targets']} target classes but the model "
                            f"has {n_classes} classes; give targets <= {n_classes - 1}")
        if "dlr" in s["attack"] and n_classes < 3:
            raise UserError(f"attack {s['attack']} needs at least 3 classes; drop it")


def _library_versions(libs: set[str]) -> dict[str, str]:
    from cvgr.checkpoint import versions

    out = dict(versions())
    if "autoattack" in libs:
        import pyautoattack

        out["pyautoattack"] = str(pyautoattack.__version__)
    if "art" in libs:
        import art

        out["adversarial-robustness-toolbox"] = str(art.__version__)
    return out


class _Runner:
    """Runs one attack of a plan on the images still robust, with the library that owns it."""

    def __init__(self, model: nn.Module, eps: float, norm: str, seed: int, batch_size: int,
                 dev: torch.device, flags: _FlagLog) -> None:
        self.model, self.eps, self.norm, self.seed = model, eps, norm, int(seed)
        self.batch_size, self.dev, self.flags = batch_size, dev, flags
        self._aa: Any = None
        self._art: Any = None

    # -- the authors' implementation ---------------------------------------------------------

    def aa(self) -> Any:
        """One pyautoattack AutoAttack object, configured by its authors' standard version."""
        if self._aa is None:
            from pyautoattack import AutoAttack

            self._aa = AutoAttack(self.model, norm=_NORMS[self.norm], eps=self.eps,
                                  seed=self.seed, device=self.dev, version="standard")
            self._aa.verbose = False
        return self._aa

    def standard_plan(self) -> list[dict[str, Any]]:
        return [{"attack": name, "library": "autoattack"} for name in self.aa().attacks_to_run]

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Apply a custom spec's settings (none for the standard plan); return those in force."""
        name = spec["attack"]
        if spec["library"] == "art":
            return {k: v for k, v in spec.items() if k not in ("attack", "library")}
        aa = self.aa()
        if name.startswith("apgd"):
            if "steps" in spec:  # a new object: APGD derives its step schedule from n_iter
                self._new_apgd(name, spec)
            atk = aa.apgd_targeted if name == "apgd-t" else aa.apgd
            out = {"n_iter": atk.n_iter, "n_restarts": atk.n_restarts, "rho": atk.thr_decr,
                   "eot_iter": atk.eot_iter, "loss": {"apgd-ce": "ce", "apgd-dlr": "dlr",
                                                      "apgd-t": "dlr-targeted"}[name]}
            if name == "apgd-t":
                out["n_target_classes"] = atk.n_target_classes
            return out
        if name.startswith("fab"):
            if "steps" in spec:
                aa.fab.n_iter = spec["steps"]
                if name == "fab-t":
                    aa.fab.n_target_classes = spec["targets"]
                else:
                    aa.fab.n_restarts = spec["restarts"]
            out = {"n_iter": aa.fab.n_iter, "targeted": name == "fab-t",
                   "n_restarts": 1 if name == "fab-t" else aa.fab.n_restarts,
                   "alpha_max": aa.fab.alpha_max, "eta": aa.fab.eta, "beta": aa.fab.beta}
            if name == "fab-t":
                out["n_target_classes"] = aa.fab.n_target_classes
            return out
        if "queries" in spec:
            aa.square.n_queries, aa.square.p_init = spec["queries"], spec["p_init"]
        return {"n_queries": aa.square.n_queries, "p_init": aa.square.p_init,
                "n_restarts": aa.square.n_restarts}

    def _new_apgd(self, name: str, spec: dict[str, Any]) -> None:
        """An APGD object built as the authors' AutoAttack builds it, with spec's settings."""
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

        aa = self.aa()
        kw = dict(n_restarts=spec["restarts"], n_iter=spec["steps"], verbose=False,
                  eps=self.eps, norm=_NORMS[self.norm], eot_iter=1, rho=.75, seed=self.seed,
                  device=self.dev, logger=aa.logger)
        if name == "apgd-t":
            aa.apgd_targeted = APGDAttack_targeted(aa.model, **kw)
            aa.apgd_targeted.n_target_classes = spec["targets"]
        else:
            aa.apgd = APGDAttack(aa.model, **kw)

    def run(self, spec: dict[str, Any], xs: Tensor, ys: Tensor) -> Tensor:
        if spec["library"] == "art":
            return self._run_art(spec, xs, ys)
        aa = self.aa()
        aa.attacks_to_run = [spec["attack"]]
        adv, _ = aa.run_standard_evaluation(xs.to(self.dev), ys.to(self.dev),
                                            batch_size=self.batch_size)
        return adv.detach()

    # -- ART ----------------------------------------------------------------------------------

    def _run_art(self, spec: dict[str, Any], xs: Tensor, ys: Tensor) -> Tensor:
        from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

        from cvgr.evaluate.art_bridge import art_classifier

        if self._art is None:
            nb = int(predict(self.model, xs[:1])[1].shape[1])
            self._art = art_classifier(self.model, xs.shape[1:], nb)
        art_norm = np.inf if self.norm == "linf" else 2
        np.random.seed(self.seed)  # ART draws from NumPy's global state (restored by caller)
        if spec["attack"] == "art-square":
            atk = SquareAttack(self._art, norm=art_norm, eps=self.eps, max_iter=spec["queries"],
                               batch_size=self.batch_size, verbose=False)
        else:
            atk = AutoProjectedGradientDescent(
                self._art, norm=art_norm, eps=self.eps, eps_step=2 * self.eps,
                max_iter=spec["steps"], nb_random_init=spec["restarts"],
                batch_size=self.batch_size, verbose=False,
                loss_type="cross_entropy" if spec["attack"] == "art-apgd-ce"
                else "difference_logits_ratio")
        adv = atk.generate(xs.detach().cpu().numpy().astype(np.float32), ys.cpu().numpy())
        return torch.from_numpy(adv)
