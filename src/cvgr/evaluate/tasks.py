"""The evaluations of `cvgr attack`, `eval`, `transfer` and `autoattack`, as functions.

Each one checks its settings (output paths included) before any work, loads the runs and their
test images, computes, hands the JSON-ready result to `show` (if given) *before* writing its
files, so a late write failure never loses the numbers, then writes them and returns the
result; its "outputs" names the files. The command line only parses options and prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cvgr.checkpoint import record_of
from cvgr.errors import UserError
from cvgr.evaluate.runs import (
    default_out,
    load_run,
    model_summary,
    model_test_images,
    run_inputs,
    run_labels,
    shared_model_test_images,
)
from cvgr.io import write_json
from cvgr.options import RunOptions

__all__ = ["DEFAULT_EPS", "Inputs", "attack_options", "attack_task", "autoattack_task",
           "eps_values", "eval_task", "transfer_task"]

PathLike = str | os.PathLike
Show = Callable[[dict[str, Any]], None] | None
DEFAULT_EPS = {"linf": "0:0.3:0.02", "l2": "0:10:1"}


@dataclass(frozen=True)
class Inputs:
    """Which images, and how they are run: shared by every evaluation here.

    `dataset` defaults to the model's; `n_images` keeps the first N test images; `seed` seeds
    random starts and probes; `allow_unfinished` accepts the weights of a run that stopped or
    diverged (refused otherwise; the result's "model" records its epochs). `options` is how
    the work runs, the one `RunOptions` of every job: its `device` (None: this machine's
    default), `data_root` (where the dataset files are) and `progress` (bars) are used here.
    """

    dataset: str | None = None
    n_images: int | None = None
    batch_size: int = 256
    seed: int = 0
    allow_unfinished: bool = False
    options: RunOptions = RunOptions(device="cpu", progress=True)

    def check(self) -> None:
        from cvgr.attacks.common import check_count

        check_count(self.batch_size, "batch_size")
        if self.n_images is not None:
            check_count(self.n_images, "n_images")

    def load(self, run: PathLike) -> torch.nn.Module:
        """The run's model on the options' device (checked: a UserError naming `device`)."""
        from cvgr.devices import resolve_device

        return load_run(run, resolve_device(self.options.device), self.allow_unfinished)

    def images(self, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The first `n_images` test images of `dataset` (default: the model's), on the CPU."""
        return model_test_images(model, self.dataset, self.n_images,
                                 data_root=self.options.data_root)


def eps_values(eps: str | Sequence[float] | None, norm: str = "linf") -> list[float]:
    """Checked eps list from 'START:STOP:STEP', '0.1,0.2', a number list, or None (default)."""
    from cvgr.attacks import check_norm
    from cvgr.evaluate import check_eps_list, parse_eps

    norm = check_norm(norm)
    values = parse_eps(eps if eps is not None else DEFAULT_EPS[norm]) if (
        eps is None or isinstance(eps, str)) else [float(e) for e in eps]
    return check_eps_list(values, norm)


def attack_options(attack: str, *, norm: str = "linf", steps: int = 8,
                   step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                   queries: int = 100, sigma: float = 0.001) -> dict[str, Any]:
    """The options `attack` takes, checked (a bad value fails before any work)."""
    from cvgr.attacks import check_options

    kw: dict[str, Any] = {"norm": norm}
    if attack in ("pgd", "nes"):
        kw.update(steps=steps, step_size=step_size)
    if attack == "pgd":
        kw.update(restarts=restarts, random_start=random_start)
    if attack == "nes":
        kw.update(queries=queries, sigma=sigma)
    return check_options(**kw)


def _check_masking(checks: bool, norm: str, steps: int, check_eps: float | None,
                   check_images: int, nes_images: int) -> None:
    from cvgr.attacks import check_eps as check_one_eps
    from cvgr.attacks.common import check_count

    if checks:
        check_count(steps, "steps")
        check_count(check_images, "check_images")
        check_count(nes_images, "nes_images", minimum=0)
        if check_eps is not None:
            check_one_eps(check_eps, norm, param="check_eps")


def _outputs(runs: Sequence[PathLike], files: Sequence[PathLike | None],
             *paths: tuple[PathLike | None, str]) -> None:
    """Refuse, before any work, output files that could not be written at the end, or that
    would replace one of the command's inputs (a file of one of `runs`, one of `files`) or
    each other."""
    from cvgr.io import check_output_file

    protect = [f for r in runs for f in run_inputs(r)] + [Path(f) for f in files if f]
    done: list[Path] = []
    for path, param in paths:
        if path is not None:
            done.append(check_output_file(path, param, protect=[*protect, *done]))


def _default_check_eps(eps_list: Sequence[float]) -> float | None:
    nonzero = [e for e in eps_list if e > 0]
    return nonzero[(len(nonzero) - 1) // 2] if nonzero else None


def _finish(result: dict[str, Any], show: Show, *writes: Callable[[], object]) -> dict[str, Any]:
    """Show the result, then write its files (a failed write raises OSError after the show)."""
    if show is not None:
        show(result)
    for write in writes:
        write()
    return result


def attack_task(run: PathLike, inputs: Inputs | None = None, *, attack: str = "pgd",
                eps: str | Sequence[float] | None = None, norm: str = "linf", steps: int = 8,
                step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                queries: int = 100, sigma: float = 0.001, checks: bool = True,
                check_eps: float | None = None, check_images: int = 1000, nes_images: int = 100,
                out: PathLike | None = None, save_examples: PathLike | None = None,
                show: Show = None) -> dict[str, Any]:
    """Robustness curve of one run (JSON + PNG), with the gradient-masking checks at one eps.

    `out` defaults to RUN_DIR/attack-ATTACK-NORM.json; the plot goes beside it as .png;
    `save_examples` also writes the adversarial images of every eps (.npz). `check_eps`
    defaults to the (lower) median nonzero eps; the checks use the first `check_images` images.
    """
    from cvgr import evaluate

    inputs = inputs or Inputs()
    inputs.check()
    eps_list = eps_values(eps, norm)
    kw = attack_options(attack, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
                        random_start=random_start, queries=queries, sigma=sigma)
    _check_masking(checks, norm, steps, check_eps, check_images, nes_images)
    out = Path(out) if out else default_out(run, f"attack-{attack}-{norm}")
    _outputs([run], [], (out, "out"), (out.with_suffix(".png"), "out"),
             (save_examples, "save_examples"))
    model = inputs.load(run)
    x, y, dataset = inputs.images(model)
    res = evaluate.robustness_curve(model, x, y, attack, eps_list, inputs.batch_size,
                                    seed=inputs.seed, progress=inputs.options.progress,
                                    return_examples=bool(save_examples), **kw)
    curve, examples = res if isinstance(res, tuple) else (res, None)
    summary = model_summary(model, run)
    result: dict[str, Any] = {"model": summary, "dataset": dataset, "curve": curve}
    ce = check_eps if check_eps is not None else _default_check_eps(eps_list)
    if checks and ce is not None:
        n = min(len(x), check_images)
        result["masking"] = evaluate.masking_checks(
            model, x[:n], y[:n], ce, norm=norm, steps=steps, batch_size=inputs.batch_size,
            nes_images=nes_images, seed=inputs.seed, progress=inputs.options.progress)
    png = out.with_suffix(".png")
    result["outputs"] = {"json": str(out), "png": str(png)}
    if save_examples:
        result["outputs"]["examples"] = str(save_examples)
    writes = [lambda: write_json(out, result),
              lambda: evaluate.plot_curves({f"{summary.get('arch', 'model')} {attack}": curve},
                                           png, title=f"{dataset}: {attack} ({norm})")]
    if save_examples and examples is not None:
        writes.append(lambda: evaluate.save_examples(
            save_examples, examples, y, curve["eps"], dataset=dataset, attack=attack, norm=norm,
            source=summary, options=curve["options"]))
    return _finish(result, show, *writes)


def eval_task(run: PathLike, inputs: Inputs | None = None, *, examples: PathLike | None = None,
              out: PathLike | None = None, show: Show = None) -> dict[str, Any]:
    """Clean test accuracy of a run, or its accuracy on saved adversarial `examples` (.npz).

    Writes the result to `out` when given.
    """
    from cvgr import evaluate

    inputs = inputs or Inputs()
    inputs.check()
    _outputs([run], [examples], (out, "out"))
    model = inputs.load(run)
    result: dict[str, Any] = {"model": model_summary(model, run)}
    if examples is None:
        x, y, dataset = inputs.images(model)
        acc = evaluate.accuracy(model, x, y, inputs.batch_size)
        result.update(dataset=dataset, n_images=len(x), clean_accuracy=acc)
    else:
        named = inputs.dataset or record_of(model, missing_ok=True).get("dataset")
        ex = evaluate.load_examples(examples, shape=getattr(model, "input_shape", None),
                                    dataset=named)
        n = len(ex["y"]) if inputs.n_images is None else min(inputs.n_images, len(ex["y"]))
        y = ex["y"][:n]
        accs = [evaluate.accuracy(model, xe[:n], y, inputs.batch_size) for xe in ex["x"]]
        result.update(examples=str(examples), dataset=ex["dataset"], attack=ex["attack"],
                      norm=ex["norm"], source=ex["source"], n_images=n, eps=ex["eps"],
                      accuracy=accs)
    if not out:
        return _finish(result, show)
    result["outputs"] = {"json": str(out)}
    return _finish(result, show, lambda: write_json(out, result))


def transfer_task(runs: Sequence[PathLike], inputs: Inputs | None = None, *, eps: float,
                  steps: int = 8, attack: str = "pgd", norm: str = "linf",
                  names: Sequence[str] | None = None, out: PathLike | None = None,
                  show: Show = None) -> dict[str, Any]:
    """Source-by-target transfer accuracy among runs of one dataset (JSON + heatmap PNG).

    `out` defaults to the first run's directory: RUN_DIR/transfer-ATTACK-NORM-EPS.json.
    """
    from cvgr import evaluate
    from cvgr.attacks import check_eps, check_norm
    from cvgr.attacks.common import check_count

    inputs = inputs or Inputs()
    inputs.check()
    check_eps(eps, check_norm(norm))
    check_count(steps, "steps")
    if len(runs) < 1:
        raise UserError("transfer needs at least one run directory", param="runs")
    labels = run_labels(runs, names)
    out = Path(out) if out else default_out(runs[0], f"transfer-{attack}-{norm}-{eps:g}")
    _outputs(runs, [], (out, "out"), (out.with_suffix(".png"), "out"))
    models = {n: inputs.load(r)
              for n, r in zip(labels, runs, strict=True)}
    x, y, dataset = shared_model_test_images(models, inputs.dataset, inputs.n_images,
                                             data_root=inputs.options.data_root)
    mat = evaluate.transfer_matrix(models, x, y, eps, steps, attack=attack, norm=norm,
                                   batch_size=inputs.batch_size, seed=inputs.seed,
                                   progress=inputs.options.progress)
    mat["dataset"] = dataset
    mat["models"] = {n: model_summary(m, r) for (n, m), r in
                     zip(models.items(), runs, strict=True)}
    png = out.with_suffix(".png")
    mat["outputs"] = {"json": str(out), "png": str(png)}
    return _finish(mat, show, lambda: write_json(out, mat), lambda: evaluate.plot_matrix(mat, png))


def autoattack_task(run: PathLike, inputs: Inputs | None = None, *, eps: float,
                    norm: str = "linf", version: str = "standard", attacks: str | None = None,
                    out: PathLike | None = None, show: Show = None) -> dict[str, Any]:
    """AutoAttack on a run: the authors' `standard` version, ART's (`art`), or a `custom` list.

    `attacks` (only with version custom) is 'NAME[:KEY=VALUE...],...'; `out` defaults to
    RUN_DIR/autoattack-VERSION-NORM-EPS.json.
    """
    from cvgr import evaluate
    from cvgr.attacks import check_eps, check_norm
    from cvgr.evaluate.autoattack import version_attacks

    inputs = inputs or Inputs()
    inputs.check()
    check_eps(eps, check_norm(norm))
    if version != "custom" and attacks is not None:
        raise UserError(f"attacks lists the attacks of version custom, not of {version!r}; "
                        "choose version custom or leave attacks out", param="attacks")
    version_attacks(version, attacks)
    out = Path(out) if out else default_out(run, f"autoattack-{version}-{norm}-{eps:g}")
    _outputs([run], [], (out, "out"))
    model = inputs.load(run)
    x, y, dataset = inputs.images(model)
    res = evaluate.autoattack(model, x, y, eps, norm=norm, version=version, attacks=attacks,
                              batch_size=inputs.batch_size, seed=inputs.seed,
                              progress=inputs.options.progress)
    assert isinstance(res, dict)
    res = {"model": model_summary(model, run), "dataset": dataset, **res,
           "outputs": {"json": str(out)}}
    return _finish(res, show, lambda: write_json(out, res))
