"""Phase-to-magnitude complex layers (docs/method.md section 2).

Each real input entry is read as a phase, x -> e^{ix}; the layer applies a complex affine map
z = W e^{ix} + b and returns |z|. The magnitude is the nonlinearity, so complex layers are
stacked with no other activation and each layer's magnitudes become the next layer's phases.

Speed: the complex product is done as ONE real matmul/conv on the stacked input [cos x; sin x]
with the block weight [[W_R, -W_I], [W_I, W_R]], so a complex layer costs one real kernel with
4x the MACs of a real layer of the same shape. The phasor and the magnitude are autograd
Functions with hand-derived first AND second derivatives (checked by gradcheck/gradgradcheck).

``second_order`` selects how the layer behaves under double backpropagation:

* ``"exact"``: every derivative exact.
* ``"reference"``: the published code's truncated second pass. First derivatives are
  unchanged, but when the input-gradient is itself differentiated, the unit phasor z/|z| and
  the phasor of the input, e^{ix}, are held constant; only the upstream gradient and the
  layer's own weights carry derivatives.
"""


from __future__ import annotations

from cvgr.nn.functional import MAGNITUDE_FLOOR
from cvgr.nn.layers import ComplexConv2d, ComplexLinear, second_order_mode
from cvgr.nn.shaping import GroupSum, InputShaping, PhaseScale, group_sum

__all__ = [
    "MAGNITUDE_FLOOR",
    "ComplexConv2d",
    "ComplexLinear",
    "GroupSum",
    "InputShaping",
    "PhaseScale",
    "group_sum",
    "second_order_mode",
]
