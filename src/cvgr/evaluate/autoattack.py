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

The standard version is one call of the authors' public API, `AutoAttack(model, norm=..., eps=...,
version="standard", seed=..., device=...).run_standard_evaluation(x, y, batch_size=...)`, and
its per-attack accuracies are what that call reports on its `auto-attack` logger. A custom list
goes through `version="custom"` and `attacks=`. Every example a library says fooled the model
is checked (projected onto the eps-ball and [0, 1] if it left them, the model asked again), so
a library bug cannot inflate an attack. The result records the version,
each attack's settings as run, the library versions, the seed, the robust accuracy after each
attack and which images survived.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.attacks import check_eps, check_norm
from cvgr.attacks.common import check_inputs, eval_mode, project
from cvgr.devices import model_device
from cvgr.errors import UserError
from cvgr.evaluate.curves import predict

__all__ = ["AUTOATTACK_COMPONENTS", "VERSIONS", "autoattack", "parse_attacks",
           "require_autoattack", "version_attacks"]

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


# The authors' AutoAttack reports its progress on the `auto-attack` logger (pyautoattack 0.2.0):
# one record per batch of each attack, and one per finished attack.
_BATCH = re.compile(r"(?P<attack>[a-z-]+) - \d+/\d+ - (?P<fooled>\d+) out of (?P<size>\d+) "
                    r"successfully perturbed")
_AFTER = re.compile(r"robust accuracy after (?P<attack>[A-Z-]+): (?P<pct>[\d.]+)% "
                    r"\(total time (?P<time>[\d.]+) s\)")
# The objects of the authors' AutoAttack that run each attack: attacks sharing one object share
# its settings, so a custom list that sets them differently runs them in separate calls.
_OBJECT = {"apgd-ce": "apgd", "apgd-dlr": "apgd", "apgd-t": "apgd_targeted", "fab": "fab",
           "fab-t": "fab", "square": "square"}


class _Report(logging.Handler):
    """What the authors' AutoAttack reports on its logger: the warnings of its automatic checks
    (zero gradients, randomness, ...) and, per attack, the images it attacked and fooled."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.flags: list[str] = []
        self.start()

    def start(self) -> None:
        """Forget the attack counts of an earlier call (the flags are kept)."""
        self.attacked: dict[str, int] = {}
        self.fooled: dict[str, int] = {}
        self.after: dict[str, tuple[float, float]] = {}  # attack -> (percent, total seconds)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            if msg not in self.flags:
                self.flags.append(msg)
        elif m := _BATCH.fullmatch(msg):
            name = m["attack"]
            self.attacked[name] = self.attacked.get(name, 0) + int(m["size"])
            self.fooled[name] = self.fooled.get(name, 0) + int(m["fooled"])
        elif m := _AFTER.fullmatch(msg):
            self.after[m["attack"].lower()] = (float(m["pct"]), float(m["time"]))


def _require_libraries(specs: list[dict[str, Any]] | None) -> set[str]:
    """The libraries an attack list needs, each checked to be installed."""
    libs = {s["library"] for s in specs} if specs is not None else {"autoattack"}
    if "autoattack" in libs:
        require_autoattack()
    if "art" in libs:
        from cvgr.evaluate.art_bridge import require_art

        require_art()
    return libs


def _segments(specs: list[dict[str, Any]] | None) -> list[list[dict[str, Any]] | None]:
    """The calls that run a version: None is the authors' standard version in one call; a custom
    list is cut where the library changes or an attack needs an object already set otherwise."""
    if specs is None:
        return [None]
    out: list[list[dict[str, Any]]] = []
    for spec in specs:
        last = out[-1] if out else None
        if last is None or spec["library"] == "art" or last[0]["library"] == "art" \
                or any(_clash(s, spec) for s in last):
            out.append([spec])
        else:
            last.append(spec)
    return list(out)


def _clash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two of the authors' attacks cannot run in one call with their settings."""
    if a["attack"] == b["attack"]:
        return True
    if _OBJECT[a["attack"]] != _OBJECT[b["attack"]]:
        return False
    keys = ("steps", "restarts", "targets")
    return {k: a.get(k) for k in keys} != {k: b.get(k) for k in keys}


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "linf",
               version: str = "standard", attacks: Any = None, batch_size: int = 250,
               seed: int = 0, progress: bool = True, return_examples: bool = False
               ) -> dict[str, Any] | tuple[dict[str, Any], Tensor]:
    """Run an AutoAttack version on (x, y); the result is a JSON-ready dict.

    `attacks` (only with version='custom') is a list of names or {'attack': name, **settings}
    dicts, or a string 'apgd-ce:steps=20,square:queries=100'; see AUTOATTACK_COMPONENTS for the
    names and their settings. With return_examples=True, also returns the adversarial images: for an
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
    dev = model_device(model)
    run = _Run(model, x, y, labels == y, eps=eps, norm=norm, seed=seed, batch_size=batch_size,
               dev=dev)
    forks = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    np_state = np.random.get_state()
    aa_log = logging.getLogger("auto-attack")
    log_state = (aa_log.handlers, aa_log.propagate, aa_log.level)
    aa_log.handlers, aa_log.propagate = [run.report], False
    aa_log.setLevel(logging.DEBUG)  # its per-attack accuracies are debug records
    try:
        with torch.random.fork_rng(devices=forks), eval_mode(model):
            for segment in _progress.bar(_segments(specs), desc="autoattack", progress=progress):
                run.step(segment)
    finally:
        np.random.set_state(np_state)
        aa_log.handlers, aa_log.propagate = log_state[:2]
        aa_log.setLevel(log_state[2])
    res: dict[str, Any] = {
        "version": version, "norm": norm, "eps": eps, "n": len(x), "seed": int(seed),
        "clean_accuracy": (labels == y).float().mean().item(),
        "robust_accuracy": run.robust.float().mean().item(), "attacks": run.rows,
        "correct_indices": (labels == y).nonzero().squeeze(1).tolist(),
        "robust_indices": run.robust.nonzero().squeeze(1).tolist(),
        "flags": run.report.flags, "libraries": _library_versions(libs),
        "seconds": round(time.perf_counter() - t_start, 3), "device": str(dev),
    }
    return (res, run.x_adv) if return_examples else res


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


class _Run:
    """One evaluation: the images still robust, the examples that fooled the others, the rows.

    Each call (`step`) attacks the images still robust. Every example a library says fooled the
    model is checked: projected onto the eps-ball and [0, 1] if it left them, and the model asked
    again; only a confirmed example counts, so a library bug cannot inflate an attack.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, correct: Tensor, *, eps: float,
                 norm: str, seed: int, batch_size: int, dev: torch.device) -> None:
        self.model, self.x, self.y = model, x, y
        self.eps, self.norm, self.seed = eps, norm, int(seed)
        self.batch_size, self.dev = batch_size, dev
        self.robust = correct.clone()
        self.x_adv = x.detach().clone()
        self.rows: list[dict[str, Any]] = []
        self.report = _Report()
        self._art: Any = None

    def step(self, segment: list[dict[str, Any]] | None) -> None:
        if segment is not None and segment[0]["library"] == "art":
            self._art_step(segment[0])
        else:
            self._authors_step(segment)

    def _confirm(self, idx: Tensor, adv: Tensor, claimed: Tensor) -> int:
        """Count the claimed examples (of images x[idx]) that really fool the model; returns
        how many claims did not hold."""
        idx, adv = idx[claimed], adv[claimed].to(self.x.device, self.x.dtype)
        if not len(idx):
            return 0
        xs, ys = self.x[idx], self.y[idx]
        delta = (adv - xs).flatten(1)
        size = delta.abs().amax(1) if self.norm == "linf" else delta.norm(dim=1)
        outside = (size > self.eps) | (adv.flatten(1).amin(1) < 0) | (adv.flatten(1).amax(1) > 1)
        adv[outside] = project(adv[outside], xs[outside], self.eps, self.norm)
        fooled = predict(self.model, adv, self.batch_size)[0] != ys
        self.x_adv[idx[fooled]] = adv[fooled]
        self.robust[idx[fooled]] = False
        return int((~fooled).sum())

    # -- the authors' implementation ---------------------------------------------------------

    def _authors_step(self, segment: list[dict[str, Any]] | None) -> None:
        """One run_standard_evaluation of the authors' AutoAttack on the images still robust
        (all images when it runs first, as RobustBench calls it)."""
        first = not self.rows
        idx = torch.arange(len(self.x), device=self.x.device) if first \
            else self.robust.nonzero().squeeze(1)
        aa = self._authors(segment)
        names = [str(a) for a in aa.attacks_to_run]
        before = int(self.robust.sum())
        self.report.start()
        unconfirmed = 0
        if self.eps > 0 and before:
            adv, y_adv = aa.run_standard_evaluation(self.x[idx].to(self.dev),
                                                    self.y[idx].to(self.dev),
                                                    batch_size=self.batch_size)
            claimed = self.robust[idx] & (y_adv.to(self.y.device) != self.y[idx])
            unconfirmed = self._confirm(idx, adv.detach(), claimed)
        rows = _authors_rows(aa, names, self.report, before, len(idx), len(self.x))
        if first and rows and rows[0]["attacked"] not in (0, before):
            self.report.flags.append(f"pyautoattack found {rows[0]['attacked']} images "
                                     f"classified correctly, cvgr {before}")
        self.rows += rows
        if unconfirmed:
            self.report.flags.append(
                f"{unconfirmed} example(s) that pyautoattack counted as fooling the model do "
                "not, once checked (projected onto the eps-ball and [0, 1], the model asked "
                "again); those images count as robust")

    def _authors(self, segment: list[dict[str, Any]] | None) -> Any:
        """The authors' AutoAttack: their standard version as they configure it, or a custom
        attack list with its settings on the attack objects, as their README shows."""
        from pyautoattack import AutoAttack

        common = dict(norm=_NORMS[self.norm], eps=self.eps, seed=self.seed, device=self.dev)
        if segment is None:
            return AutoAttack(self.model, version="standard", **common)
        aa = AutoAttack(self.model, version="custom", attacks=[s["attack"] for s in segment],
                        **common)
        for spec in segment:
            _configure(aa, spec)
        return aa

    # -- ART ------------------------------------------------------------------------------------

    def _art_step(self, spec: dict[str, Any]) -> None:
        idx = self.robust.nonzero().squeeze(1)
        t0 = time.perf_counter()
        if len(idx) and self.eps > 0:
            adv = self._run_art(spec, self.x[idx], self.y[idx])
            self._confirm(idx, adv, torch.ones(len(idx), dtype=torch.bool, device=idx.device))
        settings = {k: v for k, v in spec.items() if k not in ("attack", "library")}
        self.rows.append({"attack": spec["attack"], "library": "art", "settings": settings,
                          "attacked": int(len(idx)),
                          "robust_accuracy": self.robust.float().mean().item(),
                          "seconds": round(time.perf_counter() - t0, 3)})

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


def _configure(aa: Any, spec: dict[str, Any]) -> None:
    """A custom spec's settings on the authors' attack object that runs it."""
    name = spec["attack"]
    if name.startswith("apgd"):
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

        # a new object: APGD derives its step-size schedule from n_iter when it is built
        old = aa.apgd_targeted if name == "apgd-t" else aa.apgd
        kind = APGDAttack_targeted if name == "apgd-t" else APGDAttack
        new = kind(aa.model, n_restarts=spec["restarts"], n_iter=spec["steps"], verbose=False,
                   eps=aa.epsilon, norm=aa.norm, eot_iter=old.eot_iter, rho=old.thr_decr,
                   seed=aa.seed, device=aa.device, logger=aa.logger)
        if name == "apgd-t":
            new.n_target_classes = spec["targets"]
            aa.apgd_targeted = new
        else:
            aa.apgd = new
    elif name.startswith("fab"):
        aa.fab.n_iter = spec["steps"]
        if name == "fab-t":
            aa.fab.n_target_classes = spec["targets"]
        else:
            aa.fab.n_restarts = spec["restarts"]
    else:
        aa.square.n_queries, aa.square.p_init = spec["queries"], spec["p_init"]


def _fraction(k: int, n: int) -> float:
    """k / n in float32, as a tensor's mean gives it (the result's other accuracies)."""
    return float(np.float32(k) / np.float32(n))


def _settings(aa: Any, name: str) -> dict[str, Any]:
    """The settings an attack of the authors' AutoAttack object runs with."""
    if name.startswith("apgd"):
        atk = aa.apgd_targeted if name == "apgd-t" else aa.apgd
        out = {"n_iter": atk.n_iter, "n_restarts": atk.n_restarts, "rho": atk.thr_decr,
               "eot_iter": atk.eot_iter, "loss": {"apgd-ce": "ce", "apgd-dlr": "dlr",
                                                  "apgd-t": "dlr-targeted"}[name]}
        if name == "apgd-t":
            out["n_target_classes"] = atk.n_target_classes
        return out
    if name.startswith("fab"):
        out = {"n_iter": aa.fab.n_iter, "targeted": name == "fab-t",
               "n_restarts": 1 if name == "fab-t" else aa.fab.n_restarts,  # as the run sets it
               "alpha_max": aa.fab.alpha_max, "eta": aa.fab.eta, "beta": aa.fab.beta}
        if name == "fab-t":
            out["n_target_classes"] = aa.fab.n_target_classes
        return out
    return {"n_queries": aa.square.n_queries, "p_init": aa.square.p_init,
            "n_restarts": aa.square.n_restarts}


def _authors_rows(aa: Any, names: list[str], report: _Report, robust: int, given: int,
                  n: int) -> list[dict[str, Any]]:
    """The rows of one call on `given` images (`robust` of them still robust), from what the
    authors' AutoAttack reported: the images each attack ran on and fooled, the robust accuracy
    after it and its time. An attack it skipped (no image left) attacked none."""
    rows, clock = [], 0.0
    for name in names:
        attacked, total = 0, clock
        if name in report.after:
            pct, total = report.after[name]
            attacked = report.attacked.get(name, 0)
            robust = attacked - report.fooled.get(name, 0)
            if abs(pct - 100 * robust / given) > 0.0051:  # it prints 2 decimals of a percent
                raise RuntimeError(f"cannot read pyautoattack's report: by its batches {name} "
                                   f"left {robust} of {given} images, by its summary {pct}%")
        rows.append({"attack": name, "library": "autoattack", "settings": _settings(aa, name),
                     "attacked": attacked, "robust_accuracy": _fraction(robust, n),
                     "seconds": round(total - clock, 3)})
        clock = total
    return rows
