"""The whole gradient-regularized training step as one traced (optionally compiled) graph.

The eager GR step runs the forward, the input-gradient pass and autograd's backward through
both, one autograd node at a time. :class:`GRStep` instead writes the step with ``torch.func``
(``grad`` of ``CE + beta * P`` where P itself holds ``grad`` with respect to the input), traces
it once per input shape with ``make_fx`` into a single graph of plain tensor operations, and
runs that graph:

* ``"traced"``: the graph as traced, no autograd bookkeeping at run time;
* ``"compiled"``: the graph compiled by ``torch.compile`` (inductor), which fuses the
  phasor / magnitude elementwise work into few kernels. Needs a C compiler on CPU; if
  compilation fails the step falls back to ``"traced"`` with one warning.

Same objective as :func:`cvgr.defenses.gradient_regularized_loss` for the ``exact`` and
``reference`` modes (the fd mode and models with BatchNorm in training mode keep the eager
step: :meth:`GRStep.supports`). Gradients are written into ``p.grad``, so any optimiser
steps as usual. Equality with the eager step and with finite differences is tested in float64.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvgr.defenses.gradient_penalty import GRLoss, check_beta, check_inputs, grad_norm_sq
from cvgr.errors import UserError
from cvgr.nn import second_order_mode

__all__ = ["AUTO_COMPILE_BATCHES", "AUTO_MIN_BATCHES", "GR_STEPS", "GRStep",
           "resolve_gr_step"]

GR_STEPS = ("auto", "eager", "traced", "compiled")
# "auto" traces when an epoch has at least this many batches: tracing costs a few seconds
# once per run and batch shape, which a short run (a test, a smoke run) does not win back.
AUTO_MIN_BATCHES = 100
# ... and compiles, on a CPU with a C++ compiler, when the whole run has at least this many:
# compiling costs about a minute once per run on 2 cores and saves about 25 ms per batch
# there (docs/benchmarks.md), so it wins from a few thousand batches on (a paper-recipe
# Fashion-MNIST run has 28,140).
AUTO_COMPILE_BATCHES = 5000


def resolve_gr_step(gr_step: str, batches_per_epoch: int, epochs: int = 1,
                    device: str | torch.device = "cpu") -> str:
    """The GR step to run: `gr_step` itself, or what ``"auto"`` means for this run.

    ``"auto"``: ``"eager"`` when an epoch has fewer than :data:`AUTO_MIN_BATCHES` batches;
    else ``"compiled"`` on a CPU with a C++ compiler when the run has at least
    :data:`AUTO_COMPILE_BATCHES` batches in all; else ``"traced"`` (exact, the same graph as
    the eager step without autograd's per-node bookkeeping, no compiler needed). On CUDA auto
    stays ``"traced"``: that is what trained the shipped zoo on a GPU; ``"compiled"`` there
    is opt-in.
    """
    if gr_step not in GR_STEPS:
        raise UserError(f"unknown GR step {gr_step!r}; choose from {', '.join(GR_STEPS)}",
                        param="gr_step")
    if gr_step != "auto":
        return gr_step
    if batches_per_epoch < AUTO_MIN_BATCHES:
        return "eager"
    if torch.device(device).type == "cpu" and batches_per_epoch * epochs >= AUTO_COMPILE_BATCHES \
            and _cxx_compiler() is not None:
        return "compiled"
    return "traced"


def _cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would use, if one is installed."""
    import os
    import shutil

    return next((p for c in (os.environ.get("CXX"), "g++", "clang++") if c
                 for p in [shutil.which(c)] if p), None)


class GRStep:
    """``step(x, y) -> GRLoss``: fills ``p.grad`` of every parameter with the gradient of
    ``CE_mean + beta * P`` (P as in :func:`~cvgr.defenses.input_gradient_penalty`).

    Args:
        model: the network; its parameters and buffers are read at every call.
        beta: weight of the penalty (> 0).
        q: norm of the input gradient, 1 or 2.
        mode: ``"exact"`` or ``"reference"``.
        gr_step: ``"traced"`` or ``"compiled"`` (see the module docstring).

    Example::

        >>> step = GRStep(model, beta=64.0, gr_step="compiled")
        >>> opt.zero_grad(); out = step(x, y); opt.step()   # out.total, out.ce, out.penalty
    """

    def __init__(self, model: nn.Module, beta: float, q: int = 1, mode: str = "exact",
                 gr_step: str = "traced") -> None:
        if gr_step not in ("traced", "compiled"):
            raise UserError(f"gr_step must be 'traced' or 'compiled', got {gr_step!r}")
        check_beta(beta)
        if not beta > 0:
            raise UserError("GRStep needs beta > 0; train with plain cross-entropy otherwise")
        if not self.supports(model, mode):
            raise UserError(f"GRStep supports modes exact/reference on models without "
                            f"BatchNorm; got mode {mode!r} on {type(model).__name__}")
        self.model, self.beta, self.q, self.mode = model, float(beta), q, mode
        self.gr_step = gr_step
        self._graphs: dict[tuple, Callable[..., Any]] = {}

    @staticmethod
    def supports(model: nn.Module, mode: str) -> bool:
        """Whether the traced step applies: exact/reference mode, no BatchNorm (whose running
        statistics the eager step updates in place)."""
        return mode in ("exact", "reference") and not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    def functional(self) -> Callable[..., Any]:
        """The step as a pure function ``(params, buffers, x, y) -> (grads, (total, ce,
        penalty, logits))``; ``torch.func.vmap`` of it trains stacked models of one
        architecture (tested equal to one by one; slower on CPU, docs/benchmarks.md)."""
        from torch.func import functional_call, grad

        model, beta, q = self.model, self.beta, self.q

        def step(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor,
                 y: Tensor) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]:
            def ce_fn(p: dict[str, Tensor], xx: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
                logits = functional_call(model, (p, buffers), (xx,))
                ce = F.cross_entropy(logits, y)
                return ce, (ce, logits)

            def objective(p: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
                gx, (ce, logits) = grad(ce_fn, argnums=1, has_aux=True)(p, x)
                penalty = grad_norm_sq(gx, q).mean()
                total = ce + beta * penalty
                return total, (total, ce, penalty, logits)

            g, aux = grad(objective, has_aux=True)(params)
            return g, aux

        return step

    def _graph(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor,
               y: Tensor) -> Callable[..., Any]:
        key = (tuple(x.shape), x.dtype, x.device, tuple(y.shape), y.dtype)
        fn = self._graphs.get(key)
        if fn is not None:
            return fn
        from torch.fx.experimental.proxy_tensor import make_fx

        ctx = second_order_mode(self.model, "reference") if self.mode == "reference" \
            else nullcontext()
        with ctx, torch.enable_grad():
            gm = make_fx(self.functional())(params, buffers, x, y)
        fn = gm
        if self.gr_step == "compiled":
            fn = _compiled(gm, (params, buffers, x, y))
        self._graphs[key] = fn
        return fn

    def __call__(self, x: Tensor, y: Tensor) -> GRLoss:
        check_inputs(x, y, self.q, self.mode, None)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        params = {n: p.detach() for n, p in named}
        buffers = {n: b for n, b in self.model.named_buffers()}
        x = x.detach()
        grads, (total, ce, penalty, logits) = self._graph(params, buffers, x, y)(
            params, buffers, x, y)
        for n, p in named:
            g = grads[n]
            if p.grad is None:
                p.grad = g
            else:
                p.grad.add_(g)
        return GRLoss(total, ce, penalty, logits)


def _compiled(gm: Callable[..., Any], args: tuple) -> Callable[..., Any]:
    """torch.compile(gm), tried once on `args`; the traced graph itself if that fails."""
    try:
        fn = torch.compile(gm, fullgraph=True, dynamic=False)
        fn(*args)
        return fn
    except Exception as e:  # no C compiler, unsupported backend, ...: stay correct, go slower
        warnings.warn(f"GR step: torch.compile failed ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200] if str(e) else ''}); running the traced "
                      "graph uncompiled", RuntimeWarning, stacklevel=3)
        return gm
