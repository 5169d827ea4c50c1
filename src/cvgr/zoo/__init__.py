"""The model zoo: the paper's models trained at the paper's budget, shipped with the package.

Each entry is a `cvgr train` configuration (the dataset recipe: 30 epochs, lr 0.005 x0.2 at
epoch 20, batch 64, every training image, seed 0 unless said). Its weights live in
``weights/<dataset>/<name>.safetensors`` (the training record, per-epoch seconds and device
inside) and its measured numbers in ``weights/<dataset>/<name>.eval.json`` beside them.

    cvgr.load("zoo:fashion-mnist/complex-gr")      # a shipped model
    zoo.train(["fashion-mnist/real-gr"], "runs/zoo")  # resumable run dirs, one after another
    zoo.publish("runs/zoo/fashion-mnist/real-gr")    # copy a finished run into the zoo
    zoo.evaluate(n=500)                             # clean, PGD(8), standard AutoAttack

The zoo directory is the package's own unless `root` (or the CVGR_ZOO_DIR variable) says
otherwise.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvgr.errors import UserError
from cvgr.io import read_json, read_jsonl, write_json

__all__ = ["CATALOGUE", "ZooEntry", "entries", "entry", "eval_file", "evaluate",
           "evaluate_further", "locate",
           "publish", "publishable_runs", "root_dir", "rows", "train", "verified", "weights_file"]

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

def root_dir(root: str | os.PathLike | None = None) -> Path:
    """The zoo's weights directory: `root`, else $CVGR_ZOO_DIR, else the package's."""
    if root is not None:
        return Path(root)
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


def weights_file(name: str, root: str | os.PathLike | None = None) -> Path:
    e = entry(name)
    return root_dir(root) / e.dataset / f"{e.short}.safetensors"


def eval_file(name: str, root: str | os.PathLike | None = None) -> Path:
    e = entry(name)
    return root_dir(root) / e.dataset / f"{e.short}.eval.json"


def locate(name: str, root: str | os.PathLike | None = None) -> Path:
    """The weights file of a zoo model, or a one-line UserError saying how to get it."""
    p = weights_file(name, root)
    if not p.is_file():
        e = entry(name)
        raise UserError(f"zoo:{e.name} is not shipped yet (no {p}); train it with `cvgr zoo "
                        f"train {e.name}` and copy it into the zoo with `cvgr zoo publish`")
    return p


def verified(name: str, root: str | os.PathLike | None = None) -> Path:
    """The weights file of a zoo model, checked against the sha256 its evaluation records:
    weights changed after they were measured are not run under the zoo's name. (A model
    published but not measured yet has no evaluation to check against; `cvgr zoo` shows it
    as not measured.)"""
    from cvgr.errors import RunError

    p, ef = locate(name, root), eval_file(name, root)
    if not ef.exists():
        return p
    try:
        want = read_json(ef).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        want = None
    if not isinstance(want, str):
        raise RunError(f"zoo:{entry(name).name}: {ef} records no sha256 of its weights (damaged?), "
                       "so they cannot be checked; reinstall cvgr")
    if _sha256(p) != want:
        raise RunError(f"zoo:{entry(name).name}: {p} does not match the sha256 of the weights "
                       "the zoo measured; the file was changed or damaged: reinstall cvgr "
                       f"(new weights you published: `cvgr zoo evaluate {entry(name).name}`)")
    return p


# -- training and publishing ------------------------------------------------------------------

def train(names: Sequence[str] | None, runs_root: str | os.PathLike, *,
          device: str | None = None, data_root: str | os.PathLike | None = None,
          progress: bool = True, log: Any = print, gr_step: str = "auto") -> list[Path]:
    """Train entries one after another into RUNS_ROOT/<dataset>/<name>, resuming any stopped run.

    A finished run is left as it is, so the command can be rerun until everything is done.
    `gr_step` is how GR entries run their step (:func:`cvgr.train.train`; same objective).
    """
    from cvgr.train import train as train_run
    from cvgr.train.rundir import RunDir

    todo = entries(names)
    for e in todo:
        e.config()  # every configuration is checked before the first (hours-long) run
    out = []
    for e in todo:
        run_dir = Path(runs_root) / e.dataset / e.short
        resume = RunDir(run_dir).state_file.is_file()
        log(f"zoo train {e.name}: {e.command(run_dir)}" + (" (resuming)" if resume else ""))
        train_run(e.config(), run_dir, resume=resume, progress=progress, device=device,
                  data_root=data_root, gr_step=gr_step)
        out.append(run_dir)
    return out


def run_entry(run_dir: str | os.PathLike) -> ZooEntry | None:
    """The catalogue entry whose configuration this run directory holds, if any."""
    from cvgr.train.rundir import RunDir

    cfg = RunDir(run_dir).stored_config()
    if cfg is None:
        return None
    cfg = cfg.resolved()
    return next((e for e in CATALOGUE.values() if e.config() == cfg), None)


def publishable_runs(runs_root: str | os.PathLike) -> list[tuple[ZooEntry, Path]]:
    """Finished runs under RUNS_ROOT/<dataset>/<name> that hold their entry's configuration."""
    from cvgr.checkpoint import read_record

    found = []
    for e in CATALOGUE.values():
        d = Path(runs_root) / e.dataset / e.short
        if (d / "model.safetensors").is_file() and run_entry(d) == e \
                and read_record(d).get("finished"):
            found.append((e, d))
    return found


def publish(run_dir: str | os.PathLike, name: str | None = None, *,
            root: str | os.PathLike | None = None, hardware: str | None = None) -> Path:
    """Copy a finished run's weights and record into the zoo, atomically; return the file.

    The run must hold exactly the entry's configuration (found from the run when `name` is
    None). The record gains a "zoo" section: name, command, per-epoch training seconds,
    the training device and hardware.
    """
    from cvgr.checkpoint import load, read_record, save_model
    from cvgr.train.rundir import RunDir

    rd = RunDir(run_dir)
    cfg = rd.stored_config()
    if cfg is None or not rd.model_file.is_file():
        raise UserError(f"{run_dir}: not a cvgr run directory (no config.json and "
                        "model.safetensors); give the output directory of `cvgr train`",
                        param="run_dir")
    cfg = cfg.resolved()
    if name is None:
        e = run_entry(run_dir)
        if e is None:
            raise UserError(f"{run_dir}: its training settings match no zoo entry; "
                            f"`cvgr zoo` lists the entries and their commands")
    else:
        e = entry(name)
        if e.config() != cfg:
            diffs = "; ".join(e.config().differences(cfg)[:4])
            raise UserError(f"{run_dir} was not trained as zoo:{e.name} ({diffs})")
    record = read_record(rd.model_file)
    if not record.get("finished"):
        raise UserError(f"{run_dir}: training is not finished ({record.get('epochs_completed')}"
                        f"/{record.get('epochs')} epochs); resume it with `cvgr zoo train "
                        f"{e.name}` first")
    stored = read_json(rd.config_file)
    history = read_jsonl(rd.metrics_file) if rd.metrics_file.is_file() else []
    device = str(stored.get("environment", {}).get("device", "unknown"))
    record["zoo"] = {
        "name": e.name, "summary": e.summary, "command": stored.get("command"),
        "train_seconds_per_epoch": [r.get("train_seconds") for r in history],
        "device": device, "hardware": hardware or _hardware(device),
        "hardware_source": "given" if hardware else "detected when published",
        "published": _now(),
    }
    model = load(rd.model_file)
    return save_model(model, weights_file(e.name, root), record)


def _hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
        return "CUDA GPU (name not recorded)"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                        name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(path: Path) -> str:
    """Digest of the weights alone (names, dtypes, shapes, values), not of the record: a model
    published again with a new record keeps its evaluation."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for k, t in sorted(load_file(str(path)).items()):
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# -- evaluation -------------------------------------------------------------------------------

def evaluate(names: Sequence[str] | None = None, n: int = 500, *,
             root: str | os.PathLike | None = None, device: str | None = None,
             version: str = "standard", attacks: Any = None, force: bool = False,
             data_root: str | os.PathLike | None = None, progress: bool = True,
             log: Any = print) -> list[dict[str, Any]]:
    """Clean, PGD(8) and AutoAttack accuracy at the dataset's claim eps on the first n test
    images, per shipped model, stored as JSON beside its weights.

    Resumable: a model whose stored evaluation has the same weights (sha256), n, eps, version
    and attacks is skipped unless `force`; PGD(8) is stored before AutoAttack starts.
    """
    import torch

    from cvgr.benchmarking import _device, _device_name, _test_images, claim_eps
    from cvgr.checkpoint import load
    from cvgr.evaluate import accuracy, attack_batched, autoattack
    from cvgr.evaluate.autoattack import version_attacks

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"n must be a whole number >= 1, got {n!r}")
    version_attacks(version, attacks)
    todo = [e for e in entries(names) if weights_file(e.name, root).is_file()]
    if names and len(todo) < len(list(names)):
        missing = [e.name for e in entries(names) if e not in todo]
        locate(missing[0], root)  # raises: not shipped yet
    dev = _device(device)
    results = []
    for e in todo:
        wf, ef = weights_file(e.name, root), eval_file(e.name, root)
        eps = claim_eps(e.dataset)
        key = {"n": n, "eps": eps, "norm": "linf", "weights_sha256": _sha256(wf),
               "version": version, "attacks": attacks}
        old = read_json(ef) if ef.is_file() else {}
        if not force and {k: old.get(k) for k in key} == key and "autoattack" in old:
            log(f"zoo evaluate {e.name}: already measured (n={n}, eps={eps:g}); --force redoes it")
            results.append(old)
            continue
        model = load(wf, dev)
        x, y, _ = _test_images(e.dataset, n, data_root)
        t0 = time.perf_counter()
        gen = torch.Generator(device=dev).manual_seed(0)
        x_pgd = attack_batched(model, x, y, "pgd", eps, 256, gen, steps=8)
        res: dict[str, Any] = {
            "name": e.name, **key, "images": {"split": "test", "first": 0, "count": len(x)},
            "clean_accuracy": accuracy(model, x, y),
            "pgd8": {"accuracy": accuracy(model, x_pgd, y), "steps": 8, "restarts": 1,
                     "step_size": "1.85 * eps / steps", "random_start": True, "seed": 0},
            "device": _device_name(dev), "measured": _now(),
        }
        write_json(ef, res)
        log(f"zoo evaluate {e.name}: clean {res['clean_accuracy']:.4f}, PGD(8) "
            f"{res['pgd8']['accuracy']:.4f} at eps {eps:g}; AutoAttack {version} next")
        aa = autoattack(model, x, y, eps, version=version, attacks=attacks, seed=0,
                        progress=progress)
        assert isinstance(aa, dict)
        res["autoattack"] = aa
        res["seconds"] = round(time.perf_counter() - t0, 3)
        write_json(ef, res)
        log(f"zoo evaluate {e.name}: AutoAttack {version} {aa['robust_accuracy']:.4f} "
            f"({res['seconds']:.0f} s)")
        results.append(res)
    return results


def evaluate_further(name: str, attacks: str, *, seed: int = 1,
                     root: str | os.PathLike | None = None, device: str | None = None,
                     data_root: str | os.PathLike | None = None, progress: bool = True,
                     log: Any = print) -> dict[str, Any]:
    """Attack the images that survived a model's stored standard AutoAttack again, with a
    custom attack list (e.g. ``"square:queries=10000"``, as AutoAttack's own flag advises),
    and store the per-image worst case over both in the model's evaluation JSON.

    Only the survivors need attacking: an image the standard version already fooled counts
    as fooled either way, so the result is the robust accuracy of the union of the two
    evaluations. Appended to ``"further"`` in the eval file; the table and docs show it.
    """
    import torch

    from cvgr.benchmarking import _device, _device_name, _test_images
    from cvgr.checkpoint import load
    from cvgr.evaluate import autoattack
    from cvgr.evaluate.autoattack import version_attacks

    specs = version_attacks("custom", attacks)
    wf, ef = locate(name, root), eval_file(name, root)
    ev = read_json(ef) if ef.is_file() else {}
    aa = ev.get("autoattack") or {}
    if ev.get("weights_sha256") != _sha256(wf) or aa.get("version") != "standard":
        raise UserError(f"zoo:{entry(name).name} has no standard AutoAttack of its current "
                        f"weights to build on; run `cvgr zoo evaluate {entry(name).name}` first")
    dev = _device(device)
    model = load(wf, dev)
    x, y, _ = _test_images(entry(name).dataset, ev["n"], data_root)
    survivors = torch.tensor(aa["robust_indices"], dtype=torch.long)
    t0 = time.perf_counter()
    if len(survivors):
        res = autoattack(model, x[survivors], y[survivors], ev["eps"], version="custom",
                         attacks=attacks, seed=seed, progress=progress)
        assert isinstance(res, dict)
        still = [int(survivors[i]) for i in res["robust_indices"]]
        detail: dict[str, Any] = {"attacks": res["attacks"], "flags": res["flags"],
                                  "libraries": res["libraries"]}
    else:
        still, detail = [], {"attacks": specs}
    row = {"attacks_spec": attacks, "seed": seed, "attacked": len(survivors),
           "worst_case_robust_accuracy": len(still) / ev["n"], "robust_indices": still,
           **detail, "device": _device_name(dev), "measured": _now(),
           "seconds": round(time.perf_counter() - t0, 3)}
    ev.setdefault("further", []).append(row)
    write_json(ef, ev)
    log(f"zoo evaluate {entry(name).name}: {attacks} (seed {seed}) on the {len(survivors)} "
        f"survivors of the standard AutoAttack: worst case {row['worst_case_robust_accuracy']:.4f}"
        f" (standard alone {aa['robust_accuracy']:.4f})")
    return row


# -- the table --------------------------------------------------------------------------------

def rows(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per catalogue entry, with what is measured (None where nothing is)."""
    from cvgr.checkpoint import read_record
    from cvgr.models import build, count_parameters, resolve

    out = []
    for e in CATALOGUE.values():
        cfg = e.config()
        spec = resolve(cfg.arch)
        r: dict[str, Any] = {
            "name": e.name, "dataset": e.dataset, "summary": e.summary,
            "architecture": f"{spec.reference_name} ({'complex' if cfg.complex else 'real'})",
            "defense": cfg.defense,
            "parameters": count_parameters(build(cfg.arch, complex=cfg.complex)),
            "shipped": False, "evaluated": False, "clean_accuracy": None, "pgd8": None,
            "autoattack": None, "version": None, "eps": None, "n": None,
            "seconds_per_epoch": None, "epochs": None, "device": None, "hardware": None,
            "eval_device": None, "flags": [], "further": [], "strongest": None,
        }
        wf = weights_file(e.name, root)
        if wf.is_file():
            rec = read_record(wf)
            z = rec.get("zoo", {})
            secs = [s for s in z.get("train_seconds_per_epoch", []) if isinstance(s, int | float)]
            r.update(shipped=True, epochs=rec.get("epochs_completed"),
                     seconds_per_epoch=sum(secs) / len(secs) if secs else None,
                     device=z.get("device"), hardware=z.get("hardware"),
                     val_accuracy=rec.get("metrics", {}).get("val_acc"))
            ef = eval_file(e.name, root)
            ev = read_json(ef) if ef.is_file() else {}
            if ev.get("weights_sha256") == _sha256(wf):
                aa = ev.get("autoattack") or {}
                r.update(evaluated="autoattack" in ev, clean_accuracy=ev.get("clean_accuracy"),
                         pgd8=(ev.get("pgd8") or {}).get("accuracy"),
                         autoattack=aa.get("robust_accuracy"), version=ev.get("version"),
                         eps=ev.get("eps"), n=ev.get("n"), eval_device=ev.get("device"),
                         flags=list(aa.get("flags") or []),
                         further=[{k: f.get(k) for k in ("attacks_spec", "seed", "attacked",
                                                         "worst_case_robust_accuracy")}
                                  for f in ev.get("further", [])])
                if r["autoattack"] is not None:  # the lowest any stored evaluation reached
                    r["strongest"] = min([r["autoattack"], *(f["worst_case_robust_accuracy"]
                                                             for f in r["further"])])
        out.append(r)
    return out


def _f(v: Any, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def aa_cell(r: dict[str, Any]) -> str:
    """A row's AutoAttack text: the accuracy, its version if not standard, AutoAttack's own
    flag, and the worst case after further attacks where that is lower."""
    if r["autoattack"] is None:
        return "-"
    aa = _f(r["autoattack"])
    if r["version"] != "standard":
        aa += f" ({r['version']})"
    if r.get("flags"):
        aa += " (flagged)"
    if r.get("strongest") is not None and r["strongest"] < r["autoattack"]:
        aa += f"; {_f(r['strongest'])} with further attacks"
    return aa


def table(rs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the zoo table."""
    head = ["name", "architecture", "defense", "parameters", "clean acc", "PGD(8) acc",
            "AutoAttack acc", "eps", "images", "evaluated on", "train s/epoch",
            "trained on"]
    body = []
    for r in rs:
        if not r["shipped"]:
            state = "not trained yet"
            cells = [state, "-", "-", "-", "-", "-"]
        elif r["clean_accuracy"] is None:
            cells = ["not evaluated", "-", "-", "-", "-", "-"]
        else:
            aa = "running" if r["autoattack"] is None else aa_cell(r)
            cells = [_f(r["clean_accuracy"]), _f(r["pgd8"]), aa, _f(r["eps"], "g"), str(r["n"]),
                     r.get("eval_device") or "-"]
        hw = "-" if not r["shipped"] else f"{r['device']}: {r['hardware']}"
        body.append([r["name"], r["architecture"], r["defense"], f"{r['parameters']:,}", *cells,
                     _f(r["seconds_per_epoch"], ".1f"), hw])
    return head, body


def markdown_table(rs: list[dict[str, Any]]) -> str:
    head, body = table(rs)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
