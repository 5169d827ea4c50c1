"""Saved adversarial example sets (.npz, no pickle), for transfer and later re-evaluation.

Arrays: x (E, N, C, H, W) float32 in [0, 1] or uint8 (divided by 255 on load), y (N,) int64,
eps (E,); strings: dataset, attack, norm, source (the source model's record as JSON).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cvgr.errors import UserError
from cvgr.io import atomic_write

__all__ = ["load_examples", "save_examples"]


def save_examples(path: str | os.PathLike, x: Tensor | Sequence[Tensor], y: Tensor,
                  eps: float | Sequence[float], *, dataset: str, attack: str,
                  norm: str = "linf", source: dict[str, Any] | None = None,
                  options: dict[str, Any] | None = None, uint8: bool = False) -> Path:
    """Write one example set per eps. uint8 quantises (may leave the eps-ball by < 1/510)."""
    xs = torch.stack(list(x)) if not isinstance(x, Tensor) else x
    eps_arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    if xs.dim() == 4:
        xs = xs.unsqueeze(0)
    if xs.shape[0] != len(eps_arr) or xs.shape[1] != len(y):
        raise ValueError(f"examples {tuple(xs.shape)} do not match {len(eps_arr)} eps and "
                         f"{len(y)} labels")
    arr = xs.detach().cpu().numpy()
    arr = np.rint(arr * 255).astype(np.uint8) if uint8 else arr.astype(np.float32)
    fields: dict[str, Any] = {
        "x": arr, "y": y.detach().cpu().numpy().astype(np.int64), "eps": eps_arr,
        "dataset": np.array(dataset), "attack": np.array(attack), "norm": np.array(norm),
        "source": np.array(json.dumps(source or {}, default=str)),
        "options": np.array(json.dumps(options or {}, default=str))}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **fields)

    return atomic_write(path, write)


def load_examples(path: str | os.PathLike, *, shape: Sequence[int] | None = None,
                  dataset: str | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """Read an example set; refuse one of another image shape or dataset, with a clear error.

    Also refused: no eps sets, no images, NaN/inf images, labels outside 0..num_classes-1
    (default: the file's dataset's classes), `source` or `options` that are not JSON objects.

    Returns {"x": float tensor (E, N, ...), "y", "eps": list, "dataset", "attack", "norm",
    "source": dict, "options": dict}.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such examples file; write one with "
                        "`cvgr attack RUN_DIR --save-examples FILE.npz`")
    d = _read_npz(p)
    missing = {"x", "y", "eps", "dataset"} - set(d)
    if missing:
        raise UserError(f"{p}: examples file lacks {', '.join(sorted(missing))}; "
                        "write it with `cvgr attack --save-examples`")
    x, y = d["x"], d["y"]
    try:
        eps = np.atleast_1d(d["eps"]).astype(float)
    except ValueError:
        raise UserError(f"{p}: eps are not numbers; not a cvgr example set") from None
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5 or y.ndim != 1 or x.shape[0] != len(eps) or x.shape[1] != len(y):
        raise UserError(f"{p}: x {x.shape} does not fit {len(eps)} eps and {len(y)} labels")
    ds = str(d["dataset"])
    _check_content(p, x, y, eps, num_classes if num_classes is not None else _classes(ds))
    if dataset is not None and ds != dataset:
        raise UserError(f"{p}: examples are from dataset {ds!r} but the model was trained on "
                        f"{dataset!r}; craft examples on {dataset} data")
    if shape is not None and tuple(x.shape[2:]) != tuple(shape):
        raise UserError(f"{p}: examples are shaped {tuple(x.shape[2:])} but the model takes "
                        f"{tuple(shape)}; use examples made for this kind of model")
    xt = torch.from_numpy(x.astype(np.float32) / 255 if x.dtype == np.uint8
                          else x.astype(np.float32))
    if xt.numel() and (xt.min() < 0 or xt.max() > 1):
        raise UserError(f"{p}: example images outside [0, 1]; the file is not a cvgr example set")
    return {"x": xt, "y": torch.from_numpy(y.astype(np.int64)), "eps": eps.tolist(),
            "dataset": ds, "attack": str(d.get("attack", "")), "norm": str(d.get("norm", "")),
            "source": _json_field(p, d, "source"), "options": _json_field(p, d, "options")}


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{p}: not a readable .npz examples file ({e or type(e).__name__}); "
                        "write one with `cvgr attack --save-examples`") from None


def _classes(dataset: str) -> int | None:
    from cvgr.data.specs import DATASETS

    spec = DATASETS.get(dataset)
    return spec.num_classes if spec is not None else None


def _check_content(p: Path, x: np.ndarray, y: np.ndarray, eps: np.ndarray,
                   num_classes: int | None) -> None:
    """No images, NaN images, labels that are no class, bad eps: any accuracy would be noise."""
    if x.shape[0] == 0:
        raise UserError(f"{p}: the examples file holds no eps sets (eps is empty); nothing to "
                        "evaluate: craft the examples again")
    if x.shape[1] == 0:
        raise UserError(f"{p}: the examples file holds no images")
    if not (np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8):
        raise UserError(f"{p}: images are {x.dtype}, expected float32 or uint8")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UserError(f"{p}: {int((~np.isfinite(x)).sum())} image values are NaN or inf; "
                        "the attack that wrote them failed, craft the examples again")
    if not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{p}: labels are {y.dtype}, expected integers")
    top = num_classes if num_classes is not None else np.iinfo(np.int64).max
    if y.min() < 0 or y.max() >= top:
        raise UserError(f"{p}: labels outside the classes 0..{top - 1} (found {y.min()}.."
                        f"{y.max()}); not examples of this dataset")
    if not (np.isfinite(eps).all() and (eps >= 0).all()):
        raise UserError(f"{p}: eps {eps.tolist()} are not all finite and >= 0")


def _json_field(p: Path, d: dict[str, np.ndarray], key: str) -> dict[str, Any]:
    if key not in d:
        return {}
    try:
        value = json.loads(str(d[key]))
    except ValueError:
        raise UserError(f"{p}: field {key!r} is not JSON; the file was not written by cvgr "
                        "(or is damaged)") from None
    if not isinstance(value, dict):
        raise UserError(f"{p}: field {key!r} is not a JSON object; not a cvgr example set")
    return value
