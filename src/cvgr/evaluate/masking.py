"""Gradient-masking checks (Athalye et al., 2018; Carlini et al., 2019 "On evaluating ...").

A defense that merely hides its gradients looks robust to PGD but not to attacks that do not
need those gradients. Three symptoms are checked, each reported with the numbers behind it:

* ``black_box_stronger``: a black-box attack (NES, or transfer from another model) leaves
  lower accuracy than white-box PGD at the same eps. White-box should always be stronger.
* ``large_eps_not_broken``: accuracy under PGD at a huge eps (0.5 in L-inf: every image can
  be moved to uniform grey) stays above a threshold (10%).
* ``loss_not_rising``: the mean PGD loss falls as steps grow (1, 2, 4, 8), or PGD cannot lift
  it above the clean loss at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from cvgr import progress as _progress
from cvgr.attacks import check_eps, check_norm
from cvgr.attacks.common import check_count, check_scale
from cvgr.evaluate.curves import accuracy, attack_batched, mean_loss, predict, seeded_generator

__all__ = ["format_checks", "masking_checks", "print_checks", "transfer_flags"]


def masking_checks(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, norm: str = "linf",
                   steps: int = 8, batch_size: int = 256, large_eps: float | None = None,
                   threshold: float = 0.10, tolerance: float = 0.01,
                   loss_steps: Sequence[int] = (1, 2, 4, 8), loss_tolerance: float = 0.02,
                   nes_images: int | None = 100, nes_queries: int = 100, nes_sigma: float = 0.001,
                   black_box_accuracy: Mapping[str, float] | None = None, seed: int = 0,
                   progress: bool = True) -> dict[str, Any]:
    """Run the three checks on (x, y) at `eps`; return numbers and flags, JSON-ready.

    PGD (`steps`, step 1.85 eps/steps, random start) is the white-box attack. NES runs on the
    first `nes_images` images (None: all; 0: skip) and is compared with PGD on the same images.
    `black_box_accuracy` adds other black-box results on the same (x, y) at the same eps,
    e.g. {"transfer from B": 0.41}. `large_eps` defaults to 0.5 (L-inf) or half the box
    diameter (L2). A check is flagged when its symptom shows beyond the tolerance; the result's
    "flagged" lists flagged checks by name.
    """
    norm = check_norm(norm)
    dim = x[0].numel() if len(x) else 1
    eps = check_eps(eps, norm, dim)
    steps, batch_size = check_count(steps, "steps"), check_count(batch_size, "batch_size")
    check_count(nes_queries, "nes_queries")
    check_scale(nes_sigma, "nes_sigma")
    loss_steps = [check_count(k, "loss_steps") for k in loss_steps]
    if nes_images is not None:
        nes_images = check_count(nes_images, "nes_images", minimum=0)
    if large_eps is None:
        large_eps = 0.5 if norm == "linf" else 0.5 * math.sqrt(dim)
    large_eps = check_eps(large_eps, norm, dim)
    gen = seeded_generator(model, seed)
    pgd_kw: dict[str, Any] = {"steps": steps, "norm": norm}
    n_nes = 0 if nes_images == 0 else min(len(x), nes_images or len(x))
    bar = _progress.bar(total=2 + (n_nes > 0) + len(loss_steps), desc="masking checks",
                        unit="attack", progress=progress)
    checks: dict[str, dict[str, Any]] = {}
    try:
        x_wb = attack_batched(model, x, y, "pgd", eps, batch_size, gen, **pgd_kw)
        bar.update()
        fooled_wb = predict(model, x_wb, batch_size)[0] != y.to(x.device)
        bb: dict[str, Any] = {}
        if n_nes:
            bb["nes"] = _nes_check(model, x[:n_nes], y[:n_nes], eps, fooled_wb[:n_nes],
                                   batch_size, gen, steps=steps, norm=norm,
                                   queries=nes_queries, sigma=nes_sigma)
            bar.update()
        checks["black_box_stronger"] = _black_box_stronger(
            bb, fooled_wb, black_box_accuracy, eps, steps, tolerance)

        x_big = attack_batched(model, x, y, "pgd", large_eps, batch_size, gen, **pgd_kw)
        bar.update()
        acc_big = accuracy(model, x_big, y, batch_size)
        checks["large_eps_not_broken"] = {"flagged": acc_big > threshold, "eps": large_eps,
                                          "accuracy": acc_big, "threshold": threshold,
                                          "attack": f"pgd-{steps}"}
        checks["loss_not_rising"] = _loss_not_rising(model, x, y, eps, norm, loss_steps,
                                                     loss_tolerance, batch_size, bar)
    finally:
        bar.close()
    flagged = [k for k, v in checks.items() if v["flagged"]]
    return {"eps": eps, "norm": norm, "n_images": len(x), "checks": checks, "flagged": flagged,
            "ok": not flagged}


def _nes_check(model: nn.Module, x: Tensor, y: Tensor, eps: float, fooled_wb: Tensor,
               batch_size: int, gen: Any, *, steps: int, norm: str, queries: int,
               sigma: float) -> dict[str, Any]:
    """NES on (x, y) against the white-box result on the same images."""
    x_bb = attack_batched(model, x, y, "nes", eps, batch_size, gen, steps=steps, norm=norm,
                          queries=queries, sigma=sigma)
    fooled_bb = predict(model, x_bb, batch_size)[0] != y.to(x.device)
    return {"accuracy": 1.0 - fooled_bb.float().mean().item(),
            "white_box_accuracy": 1.0 - fooled_wb.float().mean().item(),
            "n_images": len(x), "queries_per_step": 2 * queries, "steps": steps,
            "fooled_only_by_black_box": int((fooled_bb & ~fooled_wb).sum())}


def _black_box_stronger(bb: dict[str, Any], fooled_wb: Tensor,
                        black_box_accuracy: Mapping[str, float] | None, eps: float, steps: int,
                        tolerance: float) -> dict[str, Any]:
    wb = 1.0 - fooled_wb.float().mean().item() if len(fooled_wb) else 0.0
    for name, acc in (black_box_accuracy or {}).items():
        bb[name] = {"accuracy": float(acc), "white_box_accuracy": wb, "n_images": len(fooled_wb)}
    worst = [k for k, v in bb.items() if v["accuracy"] < v["white_box_accuracy"] - tolerance]
    return {"flagged": bool(worst and eps > 0), "eps": eps, "white_box": f"pgd-{steps}",
            "white_box_accuracy": wb, "black_box": bb, "stronger": worst,
            "tolerance": tolerance}


def _loss_not_rising(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str,
                     loss_steps: Sequence[int], loss_tolerance: float, batch_size: int,
                     bar: Any) -> dict[str, Any]:
    losses = []
    for k in loss_steps:
        xk = attack_batched(model, x, y, "pgd", eps, batch_size, steps=k, norm=norm,
                            random_start=False)
        bar.update()
        losses.append(mean_loss(model, xk, y, batch_size))
    clean_loss = mean_loss(model, x, y, batch_size)
    drops = [i for i in range(1, len(losses))
             if losses[i] < losses[i - 1] - loss_tolerance * abs(losses[i - 1])]
    # A loss already saturated after one step (a linear model) is fine; a loss that PGD
    # cannot lift above the clean loss at all, or that falls with more steps, is not.
    stuck = bool(losses) and losses[-1] <= clean_loss + loss_tolerance * abs(clean_loss)
    return {
        "flagged": bool((drops or stuck) and eps > 0), "eps": eps,
        "steps": list(loss_steps), "loss": losses, "clean_loss": clean_loss,
        "falls_after_steps": [loss_steps[i] for i in drops], "no_gain_over_clean": stuck,
        "tolerance": loss_tolerance,
    }


def transfer_flags(matrix: Mapping[str, Any], tolerance: float = 0.01) -> dict[str, Any]:
    """Black-box check on a transfer matrix: transfer from A to B beating white-box on B."""
    names, acc = matrix["sources"], matrix["accuracy"]
    hits = []
    for i, src in enumerate(names):
        for j, tgt in enumerate(matrix["targets"]):
            if src != tgt and tgt in names:
                wb = acc[names.index(tgt)][j]
                if acc[i][j] < wb - tolerance:
                    hits.append({"source": src, "target": tgt, "transfer_accuracy": acc[i][j],
                                 "white_box_accuracy": wb})
    return {"flagged": bool(hits), "tolerance": tolerance, "stronger": hits}


def print_checks(result: Mapping[str, Any], file: Any = None) -> None:
    """Terminal summary: one line per check, FLAG or ok, with its numbers."""
    print("\n".join(format_checks(result)), file=file)


def format_checks(result: Mapping[str, Any]) -> list[str]:
    """The lines of `print_checks`."""
    c = result["checks"]
    lines = [f"gradient-masking checks at eps={result['eps']:g} ({result['norm']}, "
             f"{result['n_images']} images):"]
    if "black_box_stronger" in c:
        b = c["black_box_stronger"]
        parts = [f"{k} {v['accuracy']:.3f} vs PGD {v['white_box_accuracy']:.3f}"
                 for k, v in b["black_box"].items()] or ["no black-box attack run"]
        lines.append(f"  [{_mark(b)}] black-box accuracy below white-box: " + "; ".join(parts))
    if "large_eps_not_broken" in c:
        b = c["large_eps_not_broken"]
        lines.append(f"  [{_mark(b)}] accuracy at eps={b['eps']:g}: {b['accuracy']:.3f} "
                     f"(flag above {b['threshold']:.2f})")
    if "loss_not_rising" in c:
        b = c["loss_not_rising"]
        pairs = ", ".join(f"{s}:{v:.3f}" for s, v in zip(b["steps"], b["loss"], strict=True))
        lines.append(f"  [{_mark(b)}] PGD loss by steps: clean {b['clean_loss']:.3f}, {pairs}")
    lines.append("  => possible gradient masking: " + ", ".join(result["flagged"])
                 if result["flagged"] else "  => no sign of gradient masking")
    return lines


def _mark(check: Mapping[str, Any]) -> str:
    return "FLAG" if check["flagged"] else " ok "
