"""Which device a computation runs on: the one place where the default is chosen and a
device name is checked.

    resolve_device(None)      # cuda when a CUDA GPU is present, else cpu
    resolve_device("cuda:1")  # checked: UserError naming `device` if there is no such GPU

    model_device(model)       # the device a model's parameters are on
    describe_device(dev)      # "cpu (AMD EPYC 7B13, 16 cores, 16 threads)", what results record

`deterministic(True)` asks PyTorch for deterministic kernels (see docs/cluster.md, Seeds).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from cvgr.errors import UserError

__all__ = ["default_device", "describe_device", "describe_hardware", "deterministic",
           "model_device", "resolve_device"]


def default_device() -> torch.device:
    """cuda (the current CUDA device) when PyTorch sees a CUDA GPU, else cpu.

    MPS is never chosen by default: these nets run fine on CPU and float64 (the unit-modulus
    check) is missing on MPS; ask for it with ``device="mps"``.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` parsed and checked against this machine; None gives `default_device()`.

    Raises UserError (one line, naming `device`) for an unknown name, a CUDA device when
    PyTorch sees no CUDA GPU or fewer GPUs than the index, and MPS where it is absent.
    """
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"device {device!r} is not a device name; use cpu, cuda, cuda:N "
                        "or mps", param="device") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        return _check_cuda(dev)
    if dev.type == "mps":
        if not (torch.backends.mps.is_built() and torch.backends.mps.is_available()):
            raise UserError("device 'mps' asked for, but this machine has no Apple MPS "
                            "device; use cpu", param="device")
        return dev
    raise UserError(f"device {str(dev)!r} is not supported; use cpu, cuda, cuda:N or mps",
                    param="device")


def _check_cuda(dev: torch.device) -> torch.device:
    if not torch.cuda.is_available():
        why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
               else "PyTorch sees no CUDA GPU")
        raise UserError(f"device {str(dev)!r} asked for, but {why}; use cpu",
                        param="device")
    n = torch.cuda.device_count()
    if dev.index is not None and dev.index >= n:
        raise UserError(f"device {str(dev)!r} does not exist: this machine has {n} CUDA "
                        f"GPU{'s' if n != 1 else ''} (cuda:0 .. cuda:{n - 1})", param="device")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device a model's parameters are on (cpu for a model without parameters)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def describe_hardware(device: str | torch.device, *, labelled: bool = False) -> str:
    """The hardware behind `device` on this machine: the GPU's name, or the CPU's model and
    its cores ("AMD EPYC 7B13, 16 cores"). With `labelled`, prefixed "GPU: " or "CPU: "."""
    if str(device).startswith("cuda"):  # a device name as a record stores it, or a device
        name = torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() \
            else "CUDA GPU (name not recorded)"
        return f"GPU: {name}" if labelled else name
    text = f"{_cpu_model()}, {os.cpu_count() or 1} cores"
    return f"CPU: {text}" if labelled else text


def describe_device(device: str | torch.device) -> str:
    """`device` and the hardware behind it, as a measurement records where it ran:
    "cuda:0 (NVIDIA H200)", "cpu (AMD EPYC 7B13, 16 cores, 16 threads)"."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{dev} ({describe_hardware(dev)})"
    return f"cpu ({describe_hardware(dev)}, {torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f
                         if ln.startswith("model name")), "")
    except OSError:
        name = ""
    return name or platform.processor() or platform.machine()


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Within the block, PyTorch uses deterministic kernels where it has them and raises
    where it has none (`torch.use_deterministic_algorithms`); cuDNN autotuning is off.

    On CPU our runs are already deterministic run to run; on CUDA this removes the
    atomics-based reductions (e.g. in convolution backward and index_add) that make two runs
    of one seed differ in the last bits. CUBLAS needs CUBLAS_WORKSPACE_CONFIG=:4096:8 for
    deterministic matrix products; it is set here if unset (it must be set before CUDA starts,
    so a process that already used cuBLAS may still raise). The previous settings are
    restored on exit.
    """
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        torch.backends.cudnn.deterministic = before[3]
