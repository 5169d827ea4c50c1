"""An open registry of architectures, each buildable as a real or a complex network.

Every model takes images in [0, 1] shaped (N, C, H, W) and returns logits (N, classes), so any
attack library can attack it unchanged. Names are descriptive; the reference code's class
names are aliases (``create_model("MNISTNetV1", complex=True)`` works).

The registry follows timm's conventions: :func:`register_model` adds an architecture (yours
too), :func:`list_models` lists names matching a pattern, :func:`create_model` builds one.
Lookups read the registry as it is now, so a later registration is found by name and alias.
Installed packages can register models through the ``cvgr.models`` entry-point group, and the
command line imports a module or file of yours with ``cvgr --import MODULE``.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn

from cvgr.errors import RunError, UserError
from cvgr.nn import ComplexConv2d, ComplexLinear, GroupSum, InputShaping, PhaseScale

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "Net",
    "Normalize",
    "count_macs",
    "count_parameters",
    "create_model",
    "import_models",
    "list_models",
    "register_model",
    "resolve",
]


class Normalize(nn.Module):
    """Per-channel (x - mean) / std inside the model, so attacks still see [0, 1] images."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Net(nn.Module):
    """A registered architecture: input stage, then a plain stack of layers."""

    def __init__(self, arch: str, complex: bool, input_shape: tuple[int, int, int],
                 layers: list[nn.Module]) -> None:
        super().__init__()
        self.arch, self.complex, self.input_shape = arch, complex, input_shape
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.arch} expects images shaped (N, {', '.join(map(str, self.input_shape))}),"
                f" got {tuple(x.shape)}"
            )
        return self.layers(x)


# -- small constructors that hide the real/complex choice -------------------------------------

class _Parts:
    def __init__(self, complex: bool) -> None:
        self.complex = complex

    def conv(self, cin: int, cout: int) -> nn.Module:
        if self.complex:
            return ComplexConv2d(cin, cout, 3, padding=1)
        return nn.Conv2d(cin, cout, 3, padding=1)

    def fc(self, fin: int, fout: int) -> nn.Module:
        return ComplexLinear(fin, fout) if self.complex else nn.Linear(fin, fout)

    def act(self) -> list[nn.Module]:
        """ReLU for a real net; nothing for a complex one (the magnitude is the nonlinearity)."""
        return [] if self.complex else [nn.ReLU()]

    def entry(self, shaping: bool = False, normalize: tuple | None = None) -> list[nn.Module]:
        """Input stage: optional shaping; then phases x*pi (complex) or normalisation (real)."""
        mods: list[nn.Module] = [InputShaping()] if shaping else []
        if self.complex:
            mods.append(PhaseScale())
        elif normalize is not None:
            mods.append(Normalize(*normalize))
        return mods


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture.

    ``make(complex=..., num_classes=..., in_chans=..., **kwargs)`` returns the model;
    ``input_shape`` is (C, H, W) at the default ``in_chans``; ``reference_name`` is the first
    alias (the reference code's class name for the built-in ones), else the name.
    """

    name: str
    reference_name: str
    input_shape: tuple[int, int, int]
    summary: str
    make: Callable[..., nn.Module] = field(repr=False)
    aliases: tuple[str, ...] = ()
    num_classes: int = 10
    module: str = ""


# The registry: name -> spec. Lookups read it live (no alias table frozen at import).
ARCHITECTURES: dict[str, ArchSpec] = {}

F_ = TypeVar("F_", bound=Callable[..., nn.Module])


def register_model(
    fn: F_ | None = None, *, name: str | None = None, aliases: Iterable[str] = (),
    input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, summary: str = "",
) -> Any:
    """Register an architecture builder; usable bare (``@register_model``) or with options.

    The builder is called as ``fn(complex=..., num_classes=..., in_chans=..., **kwargs)`` and
    returns an ``nn.Module`` that maps images in [0, 1] shaped (N, *input_shape) to logits
    (N, num_classes). Its name defaults to the function's name; ``aliases`` are other
    case-insensitive names. Registering a name or alias that another builder holds raises
    ValueError (re-registering the same function, e.g. on reload, replaces it).

    Example::

        @register_model(input_shape=(1, 28, 28), aliases=["TinyNet"])
        def tiny_net(complex=False, num_classes=10, in_chans=1):
            from cvgr.nn import ComplexLinear, PhaseScale
            fc = ComplexLinear if complex else torch.nn.Linear
            return torch.nn.Sequential(PhaseScale(), torch.nn.Flatten(),
                                       fc(in_chans * 784, num_classes))
    """
    def deco(f: F_) -> F_:
        spec_name = name or f.__name__
        alias_t = tuple(aliases)
        owner = f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"
        for key in (spec_name, *alias_t):
            taken = _lookup(key)
            if taken is not None and taken.module != owner:
                raise ValueError(f"register_model: name {key!r} is already taken by "
                                 f"{taken.name} ({taken.module}); pick another name")
        old = [k for k, s in ARCHITECTURES.items() if s.module == owner]
        for k in old:
            del ARCHITECTURES[k]
        ARCHITECTURES[spec_name] = ArchSpec(
            spec_name, alias_t[0] if alias_t else spec_name, tuple(input_shape),  # type: ignore[arg-type]
            summary or (inspect.getdoc(f) or "").split("\n")[0], f, alias_t, int(num_classes),
            owner)
        return f

    return deco if fn is None else deco(fn)


def _lookup(key: str) -> ArchSpec | None:
    k = key.lower()
    for spec in ARCHITECTURES.values():
        if spec.name.lower() == k or k in (a.lower() for a in spec.aliases):
            return spec
    return None


_ENTRY_POINTS_LOADED = False
ENTRY_POINT_GROUP = "cvgr.models"


def _load_entry_points() -> None:
    """Import the modules installed packages declare under the ``cvgr.models`` entry points."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not break the built-in models
            print(f"cvgr: warning: model plugin {ep.name!r} ({ep.value}) failed to load: {e}",
                  file=sys.stderr)


def import_models(modules: Iterable[str]) -> None:
    """Import modules (dotted names, or paths to .py files) that register architectures.

    What ``cvgr --import`` does; raises UserError naming a module that cannot be imported.
    """
    for m in modules:
        try:
            if m.endswith(".py") or os.sep in m or "/" in m:
                path = Path(m)
                if not path.is_file():
                    raise UserError(f"imports {m}: no such file", param="imports")
                mod_name = f"cvgr_user_{path.stem}"
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise UserError(f"imports {m}: not a Python file", param="imports")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
            else:
                if "" not in sys.path and os.getcwd() not in sys.path:
                    sys.path.append(os.getcwd())  # as `python -m` would, but after the rest
                importlib.import_module(m)
        except (UserError, RunError):
            raise
        except Exception as e:
            raise UserError(f"imports {m}: cannot import it ({type(e).__name__}: {e}); "
                            "give a module on PYTHONPATH or a path to a .py file",
                            param="imports") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a shell-style `pattern` (case-insensitive) by
    name or alias, sorted; ``list_models("mnist*")``."""
    _load_entry_points()
    pat = pattern.lower()
    return sorted(s.name for s in ARCHITECTURES.values()
                  if any(fnmatch.fnmatchcase(n.lower(), pat) for n in (s.name, *s.aliases)))


def resolve(name: str) -> ArchSpec:
    """Look an architecture up by its name or an alias (case-insensitive)."""
    spec = _lookup(name)
    if spec is None:
        _load_entry_points()
        spec = _lookup(name)
    if spec is None:
        known = ", ".join(s.name if s.reference_name == s.name
                          else f"{s.name} ({s.reference_name})" for s in ARCHITECTURES.values())
        raise UserError(f"unknown architecture {name!r}; known: {known} (register your own "
                        "with cvgr.models.register_model)")
    return spec


def create_model(name: str, complex: bool = False, num_classes: int | None = None,
                 in_chans: int | None = None, normalize: tuple | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build registered architecture `name` as a real or complex network.

    ``num_classes`` and ``in_chans`` default to the architecture's own (10 classes, and the
    channels of its ``input_shape``). ``normalize`` = (mean, std) per channel is applied inside
    real networks only (the paper normalises CIFAR-10 for real nets; complex nets read raw
    [0, 1] images as phases). The model gets ``arch`` (the canonical name), ``complex`` and
    ``input_shape`` attributes.
    """
    spec = resolve(name)
    k = spec.num_classes if num_classes is None else int(num_classes)
    c = spec.input_shape[0] if in_chans is None else int(in_chans)
    if k < 1 or c < 1:
        raise UserError(f"create_model({name!r}): num_classes and in_chans must be >= 1")
    wrap = None  # a builder that takes no `normalize` gets a Normalize stage in front
    if normalize is not None and not complex:
        params = inspect.signature(spec.make).parameters
        if "normalize" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs["normalize"] = normalize
        else:
            wrap = normalize
    model = spec.make(complex=bool(complex), num_classes=k, in_chans=c, **kwargs)
    shape = (c, *spec.input_shape[1:])
    if wrap is not None:
        model = Net(spec.name, bool(complex), shape, [Normalize(*wrap), model])
    for attr, value in (("arch", spec.name), ("complex", bool(complex)), ("input_shape", shape)):
        if not hasattr(model, attr):
            setattr(model, attr, value)
    return model


def _net(name: str, shape: tuple[int, int, int], complex: bool, in_chans: int,
         layers: list[nn.Module]) -> Net:
    return Net(name, complex, (in_chans, *shape[1:]), layers)


# -- the built-in architectures, each registered where it is built ------------------------------

_MNIST = (1, 28, 28)
_CIFAR = (3, 32, 32)


@register_model(name="mnist-cnn", aliases=["MNISTNetV0"], input_shape=_MNIST,
                summary="conv32-pool-conv64-pool-fc128-fc10")
def mnist_cnn(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
              normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-cnn", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), p.conv(in_chans, 32), *p.act(), nn.AvgPool2d(2),
        p.conv(32, 64), *p.act(), nn.AvgPool2d(2), nn.Flatten(),
        p.fc(3136, 128), *p.act(), p.fc(128, num_classes)])


@register_model(name="mnist-cnn-groupsum", aliases=["MNISTNetV1"], input_shape=_MNIST,
                summary="conv16-gs2-pool-conv32-gs2-pool-fc128-fc10")
def mnist_cnn_groupsum(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
                       normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-cnn-groupsum", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), p.conv(in_chans, 16), *p.act(), GroupSum(2),
        nn.AvgPool2d(2),
        p.conv(8, 32), *p.act(), GroupSum(2), nn.AvgPool2d(2), nn.Flatten(),
        p.fc(784, 128), *p.act(), p.fc(128, num_classes)])


@register_model(name="mnist-cnn-hybrid", aliases=["MNISTNetV2"], input_shape=_MNIST,
                summary="conv64-gs8-pool-conv32-pool, real fc64-fc10")
def mnist_cnn_hybrid(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
                     normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-cnn-hybrid", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), p.conv(in_chans, 64), *p.act(), GroupSum(8),
        nn.AvgPool2d(2),
        p.conv(8, 32), *p.act(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(1568, 64), nn.ReLU(), nn.Linear(64, num_classes)])


@register_model(name="mnist-mlp", aliases=["MNISTMLP"], input_shape=_MNIST,
                summary="fc256-fc256-fc10")
def mnist_mlp(complex: bool = False, num_classes: int = 10, in_chans: int = 1,
              normalize: tuple | None = None) -> Net:
    p = _Parts(complex)
    return _net("mnist-mlp", _MNIST, complex, in_chans, [
        *p.entry(normalize=normalize), nn.Flatten(), p.fc(in_chans * 784, 256), *p.act(),
        p.fc(256, 256), *p.act(), p.fc(256, num_classes)])


def _cifar_layers(p: _Parts, c: int, k: int, widths: tuple[int, int, int], shaping: bool,
                  normalize: tuple | None) -> list[nn.Module]:
    mods = p.entry(shaping=shaping, normalize=normalize)
    cin = c
    for w in widths:
        mods += [p.conv(cin, w), nn.BatchNorm2d(w), *p.act(), nn.AvgPool2d(2)]
        cin = w
    return [*mods, nn.Flatten(), p.fc(cin * 16, 256), *p.act(), p.fc(256, k)]


@register_model(name="cifar-cnn", aliases=["CIFARNet1"], input_shape=_CIFAR,
                summary="conv32-conv64-conv128 (+BN, pool), fc256-fc10")
def cifar_cnn(complex: bool = False, num_classes: int = 10, in_chans: int = 3,
              normalize: tuple | None = None) -> Net:
    return _net("cifar-cnn", _CIFAR, complex, in_chans, _cifar_layers(
        _Parts(complex), in_chans, num_classes, (32, 64, 128), False, normalize))


@register_model(name="cifar-cnn-shaped", aliases=["CIFARNet1_PP"], input_shape=_CIFAR,
                summary="cifar-cnn with input shaping x - sin(2 pi x)/(2 pi)")
def cifar_cnn_shaped(complex: bool = False, num_classes: int = 10, in_chans: int = 3,
                     normalize: tuple | None = None) -> Net:
    return _net("cifar-cnn-shaped", _CIFAR, complex, in_chans, _cifar_layers(
        _Parts(complex), in_chans, num_classes, (32, 64, 128), True, normalize))


@register_model(name="cifar-cnn-wide", aliases=["CIFARNet2"], input_shape=_CIFAR,
                summary="conv64-conv128-conv256 (+BN, pool), fc256-fc10")
def cifar_cnn_wide(complex: bool = False, num_classes: int = 10, in_chans: int = 3,
                   normalize: tuple | None = None) -> Net:
    return _net("cifar-cnn-wide", _CIFAR, complex, in_chans, _cifar_layers(
        _Parts(complex), in_chans, num_classes, (64, 128, 256), False, normalize))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Multiply-accumulates per image of conv and linear layers; a complex MAC counts as 4 real."""
    shape = tuple(input_shape or cast(tuple[int, ...], model.input_shape))
    total = 0

    def hook(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(mod, ComplexConv2d | nn.Conv2d):
            w = mod.weight_real if isinstance(mod, ComplexConv2d) else mod.weight
            per_out = w[0].numel()
            macs = out[0].numel() * per_out
            total += 4 * macs if isinstance(mod, ComplexConv2d) else macs
        elif isinstance(mod, ComplexLinear | nn.Linear):
            fin = mod.in_features
            macs = out[0].numel() * fin
            total += 4 * macs if isinstance(mod, ComplexLinear) else macs

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, *shape, dtype=p.dtype, device=p.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
