"""The registry of architectures, in timm's shape: register, list, look up, create.

:func:`register_model` adds an architecture (yours too), :func:`list_models` lists names
matching a pattern, :func:`resolve` looks one up by name or alias, :func:`create_model` builds
one. Lookups read the registry as it is now, so a later registration is found by name and
alias. Installed packages can register models through the ``cvgr.models`` entry-point group,
and the command line imports a module or file of yours with ``cvgr --import MODULE``
(:func:`import_models`). The built-in architectures register themselves where they are built,
in `cvgr.models.architectures`.
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
from typing import Any, TypeVar

from torch import nn

from cvgr.errors import RunError, UserError
from cvgr.models.net import Net, Normalize

__all__ = ["ARCHITECTURES", "ENTRY_POINT_GROUP", "ArchSpec", "create_model", "import_models",
           "list_models", "register_model", "resolve"]


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
