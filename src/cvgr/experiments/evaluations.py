"""What an evaluate job computes, by its config's "what": curve, transfer, masking, autoattack,
identity, sizes. Each takes plain data and the reproduction's out_dir, returns a JSON-ready dict.

Models are found by train job id under ``ROOT/runs/<id>``; test images are the first `n` of
the dataset's test split (the reference evaluates on the first 1000).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from cvgr.checkpoint import record_of
from cvgr.data import first_test_images
from cvgr.devices import describe_hardware, model_device
from cvgr.errors import UserError
from cvgr.experiments.jobs import (
    AutoAttackConfig,
    CurveConfig,
    EvalConfig,
    IdentityConfig,
    MaskingConfig,
    SizesConfig,
    TimingConfig,
    TransferConfig,
    TransferCurvesConfig,
)
from cvgr.options import RunOptions

__all__ = ["EVALUATIONS", "run_evaluation", "unit_modulus_check"]

_BATCH = 250


def _load(out_dir: Path, job_id: str, device: str | torch.device) -> nn.Module:
    from cvgr.checkpoint import load

    return load(out_dir / "runs" / job_id, device=device)


def _curve(cfg: CurveConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    from cvgr.evaluate import robustness_curve

    model = _load(ctx["out_dir"], cfg["model"], ctx["device"])
    x, y = first_test_images(record_of(model)["dataset"], cfg["n_images"], ctx["data_root"])
    kw: dict[str, Any] = {"steps": cfg["steps"]} if "steps" in cfg else {}
    res = robustness_curve(model, x, y, cfg["attack"], cfg["eps"], _BATCH, seed=0,
                           progress=ctx["progress"], **kw)
    assert isinstance(res, dict)  # no examples asked for
    return res


def _transfer(cfg: TransferConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    from cvgr.evaluate import transfer_matrix

    models = {name: _load(ctx["out_dir"], tid, ctx["device"])
              for name, tid in cfg["models"].items()}
    dataset = record_of(next(iter(models.values())))["dataset"]
    x, y = first_test_images(dataset, cfg["n_images"], ctx["data_root"])
    res = transfer_matrix(models, x, y, cfg["eps"], cfg["steps"], batch_size=_BATCH,
                          progress=ctx["progress"])
    res["runs"] = dict(cfg["models"])
    return res


def _transfer_curves(cfg: TransferCurvesConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    """The transfer matrix at every eps; at eps 0 every row is the clean accuracy."""
    from cvgr.evaluate import accuracy, transfer_matrix

    models = {name: _load(ctx["out_dir"], tid, ctx["device"])
              for name, tid in cfg["models"].items()}
    dataset = record_of(next(iter(models.values())))["dataset"]
    x, y = first_test_images(dataset, cfg["n_images"], ctx["data_root"])
    names = list(models)
    clean = {k: accuracy(m, x, y, _BATCH) for k, m in models.items()}
    matrices = []
    for eps in cfg["eps"]:
        if eps == 0:
            matrices.append([[clean[t] for t in names] for _ in names])
            continue
        m = transfer_matrix(models, x, y, eps, cfg["steps"], batch_size=_BATCH, seed=0,
                            progress=ctx["progress"])
        matrices.append(m["accuracy"])
    return {"eps": list(cfg["eps"]), "sources": names, "targets": names, "accuracy": matrices,
            "clean_accuracy": clean, "steps": cfg["steps"], "n_images": len(x),
            "runs": dict(cfg["models"])}


def _masking(cfg: MaskingConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    """The three masking checks, with transfer from an undefended surrogate as a black box."""
    from cvgr.evaluate import accuracy, attack_batched, masking_checks
    from cvgr.evaluate.curves import seeded_generator

    model = _load(ctx["out_dir"], cfg["model"], ctx["device"])
    surrogate = _load(ctx["out_dir"], cfg["surrogate"], ctx["device"])
    x, y = first_test_images(record_of(model)["dataset"], cfg["n_images"], ctx["data_root"])
    gen = seeded_generator(surrogate, 1)
    x_tr = attack_batched(surrogate, x, y, "pgd", cfg["eps"], _BATCH, gen, steps=cfg["steps"])
    name = f"transfer from {cfg['surrogate'].removeprefix('train-')}"
    res = masking_checks(model, x, y, cfg["eps"], steps=cfg["steps"], batch_size=_BATCH,
                         nes_images=cfg["nes_images"], nes_queries=cfg["nes_queries"],
                         black_box_accuracy={name: accuracy(model, x_tr, y, _BATCH)},
                         progress=ctx["progress"])
    res["clean_accuracy"] = accuracy(model, x, y, _BATCH)
    return res


def _autoattack(cfg: AutoAttackConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    """An AutoAttack version (per-image worst case) beside our PGD(8) on the same images."""
    from cvgr.evaluate import accuracy, attack_batched, autoattack
    from cvgr.evaluate.curves import seeded_generator

    model = _load(ctx["out_dir"], cfg["model"], ctx["device"])
    x, y = first_test_images(record_of(model)["dataset"], cfg["n_images"], ctx["data_root"])
    gen = seeded_generator(model, 2)
    x_pgd = attack_batched(model, x, y, "pgd", cfg["eps"], _BATCH, gen, steps=8)
    pgd_acc = accuracy(model, x_pgd, y, _BATCH)
    try:
        res = autoattack(model, x, y, cfg["eps"], version=cfg["version"],
                         attacks=cfg.get("attacks"), progress=ctx["progress"])
    except UserError as e:  # library not installed: say so in the report, do not fail the run
        return {"skipped": str(e), "eps": cfg["eps"], "n_images": len(x), "pgd_accuracy": pgd_acc,
                "version": cfg["version"], "attacks_asked": cfg.get("attacks")}
    assert isinstance(res, dict)
    res["pgd_accuracy"] = pgd_acc
    return res


def unit_modulus_check(model: nn.Module, x: Tensor, samples: int = 8) -> list[dict[str, Any]]:
    """(dg/dW_R)^2 + (dg/dW_I)^2 per weight, for trained complex layers at their real inputs.

    Output unit i depends on weight row i only, so one backward pass of the sum of all units
    (a conv layer: every channel at the centre pixel, away from the zero padding) yields
    every row's gradient; each entry must be exactly 1. Computed in float64 on a copy of each
    layer, so the deviation measures the identity, not float32 rounding.
    """
    from cvgr.nn import ComplexConv2d, ComplexLinear

    layers: list[tuple[str, ComplexLinear | ComplexConv2d]] = [
        (n, m) for n, m in model.named_modules() if isinstance(m, ComplexLinear | ComplexConv2d)]
    inputs: dict[str, Tensor] = {}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, name=n: inputs.__setitem__(name, inp[0].detach()))
        for n, m in layers]
    try:
        with torch.no_grad():
            dev = model_device(model)
            model.eval()(x[:samples].to(dev))
    finally:
        for hook in hooks:
            hook.remove()
    rows = []
    for name, layer in layers:
        lay = _double_copy(layer)
        h = inputs[name].double()
        worst = 0.0
        for s in range(len(h)):
            g = lay(h[s:s + 1])
            out = g[0, :, g.shape[2] // 2, g.shape[3] // 2] if g.dim() == 4 else g[0]
            gr, gi = torch.autograd.grad(out.sum(), [lay.weight_real, lay.weight_imag])
            worst = max(worst, float((gr ** 2 + gi ** 2 - 1).abs().max()))
        rows.append({"layer": name, "type": type(layer).__name__,
                     "weights_per_unit": int(lay.weight_real[0].numel()),
                     "units": int(lay.weight_real.shape[0]), "samples": len(h),
                     "max_abs_deviation": worst})
    return rows


_Layer = TypeVar("_Layer", bound=nn.Module)


def _double_copy(layer: _Layer) -> _Layer:
    import copy

    lay = copy.deepcopy(layer).double()
    for p in lay.parameters():
        p.requires_grad_(True)
    return lay


def _identity(cfg: IdentityConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    # float64 runs anywhere but on MPS, which has no float64
    dev = ctx["device"] if torch.device(ctx["device"]).type != "mps" else "cpu"
    model = _load(ctx["out_dir"], cfg["model"], dev)
    x, _ = first_test_images(record_of(model)["dataset"], cfg["n_images"], ctx["data_root"])
    layers = unit_modulus_check(model, x, samples=cfg["n_images"])
    return {"model": cfg["model"], "layers": layers,
            "max_abs_deviation": max((r["max_abs_deviation"] for r in layers), default=None)}


def _sizes(cfg: SizesConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    from cvgr.models import count_macs, count_parameters, create_model, resolve

    rows = {}
    for kind, arch in cfg["archs"].items():
        m = create_model(arch, complex=kind == "complex")
        spec = resolve(arch)
        rows[kind] = {"arch": spec.name, "reference": spec.reference_name,
                      "params": count_parameters(m), "macs": count_macs(m)}
    return {"models": rows}


def _timing(cfg: TimingConfig, ctx: dict[str, Any]) -> dict[str, Any]:
    """The training-time table: every model's epoch timed in this one job, on one machine."""
    from cvgr.train import TrainConfig
    from cvgr.train.timing import time_epochs

    configs = {label: TrainConfig.from_dict(c) for label, c in cfg["configs"].items()}
    threads = torch.get_num_threads()
    # one thread on a CPU: time this process's CPU seconds, which other programs sharing the
    # cores do not inflate; else elapsed time
    clock = "cpu" if torch.device(ctx["device"]).type == "cpu" and threads == 1 else "wall"
    rows = time_epochs(configs, cfg["batches"], device=ctx["device"],
                       data_root=ctx["data_root"], gr_step=ctx["gr_step"], clock=clock)
    return {"models": rows, "batches": cfg["batches"], "device": str(ctx["device"]),
            "hardware": describe_hardware(ctx["device"], labelled=True), "threads": threads,
            "clock": clock}


EVALUATIONS: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "curve": _curve, "transfer": _transfer, "masking": _masking, "autoattack": _autoattack,
    "identity": _identity, "sizes": _sizes, "timing": _timing,
    "transfer_curves": _transfer_curves,
}


def run_evaluation(cfg: EvalConfig | dict[str, Any], out_dir: str | os.PathLike,
                   options: RunOptions | None = None) -> dict[str, Any]:
    """Compute the evaluation `cfg` on the models under ROOT/runs with `options` (device,
    data out_dir, progress); the device is checked and defaults as in `cvgr.devices`."""
    from cvgr.devices import resolve_device

    options = options or RunOptions()
    what = cfg.get("what")
    if what not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {what!r}")
    ctx = {"out_dir": Path(out_dir), "device": resolve_device(options.device),
           "data_root": options.data_root, "progress": options.progress,
           "gr_step": options.gr_step}
    return EVALUATIONS[what](cfg, ctx)
