"""Claims about the compared models themselves: the unit-modulus identity of the complex
layers, and that the complex net is no bigger than the real one."""

from __future__ import annotations

from collections.abc import Mapping

from cvgr.experiments.report.claims.core import (
    HOLDS,
    NOT_HOLD,
    NOT_MEASURED,
    Claim,
    Results,
    Verdict,
    make_verdict,
)

__all__ = ["CLAIMS", "verdict_identity", "verdict_sizes"]


def verdict_identity(max_dev: float | None, tol: float = 1e-6) -> Verdict:
    """The identity (dg/dW_R)^2 + (dg/dW_I)^2 = 1 holds within `tol` on the trained layers."""
    if max_dev is None:
        return make_verdict(NOT_MEASURED, "no complex layer found")
    text = f"max |(dg/dW_R)^2 + (dg/dW_I)^2 - 1| = {max_dev:.2e} on the trained layers (float64)"
    return make_verdict(HOLDS if max_dev <= tol else NOT_HOLD, text)


def verdict_sizes(real: Mapping[str, int], complex_: Mapping[str, int],
                  slack: float = 1.1) -> Verdict:
    """The complex net gets no more storage or compute than the real one (within `slack`),
    so a robustness gain cannot be bought with size."""
    rp, rm = complex_["params"] / real["params"], complex_["macs"] / real["macs"]
    text = (f"complex/real parameters {rp:.2f} ({complex_['params']:,} vs {real['params']:,}), "
            f"MACs {rm:.2f} ({complex_['macs']:,} vs {real['macs']:,}); "
            f"criterion: both at most {slack:g}x")
    return make_verdict(HOLDS if rp <= slack and rm <= slack else NOT_HOLD, text)


def _identity(res: Results) -> Verdict:
    ident = res["evaluations"].get("eval-identity")
    if not ident:
        return make_verdict(NOT_MEASURED, "the identity check did not run")
    return verdict_identity(ident.get("max_abs_deviation"))


def _sizes(res: Results) -> Verdict:
    sizes = res["evaluations"].get("eval-sizes")
    if not sizes:
        return make_verdict(NOT_MEASURED, "sizes not computed")
    return verdict_sizes(sizes["models"]["real"], sizes["models"]["complex"])


CLAIMS: tuple[Claim, ...] = (
    Claim("identity", "unit-modulus identity", "identity", _identity),
    Claim("sizes", "matched size", "sizes", _sizes),
)
