"""`cvgr.load`: a model by the name a user gives it, a run directory, a weights file or a zoo
model ("zoo:fashion-mnist/complex-gr").

Zoo names are resolved here, above the checkpoint format (`cvgr.checkpoint`, which reads
files and knows nothing of the zoo) and the zoo's catalogue (`cvgr.zoo.catalogue`, which
checks shipped weights against the sha256 the zoo measured).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from cvgr import checkpoint
from cvgr.zoo.catalogue import resolve

__all__ = ["load"]


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         arch: str | None = None, complex: bool | None = None, *,
         allow_unfinished: bool = False) -> nn.Module:
    """Rebuild a model from its checkpoint alone; returned in eval mode with `.record` set.

    `path` is a run directory, a .safetensors file or a zoo model ("zoo:fashion-mnist/complex-gr",
    whose weights must match the sha256 the zoo measured them with).

    If `arch`/`complex` are given, a checkpoint of another architecture is refused. The weights
    of a run that has not finished (its record says `finished: false`: stopped or diverged) are
    refused unless `allow_unfinished`; the record tells its last epoch (`epochs_completed`).
    """
    return checkpoint.load(resolve(path), device, arch, complex,
                           allow_unfinished=allow_unfinished)
