"""Dense (fully connected) interaction: energy term ``-r_hi^T (W r_lo + b)`` (eq. 3 with bias)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import INTERACTIONS, Interaction, spec_int


@INTERACTIONS.register("dense")
class Dense(Interaction):
    """Symmetric dense coupling; ``W`` has shape ``[n_hi, n_lo]`` as in ``nn.Linear`` (its down
    drive uses separate feedback weights when they are set, :meth:`set_feedback`).

    Lower-layer inputs of any shape are flattened. ``init_scale`` multiplies PyTorch's default
    uniform(+-1/sqrt(fan_in)) initialisation: the free phase settles only for small weights
    (GUIDE section 1.3).
    """

    bilinear = True
    supports_feedback = True

    @classmethod
    def from_spec(cls, index, spec, in_shape, init_scale=1.0, embedding=None) -> Dense:
        """``n`` or ``{dense: n}``: ``n`` neurons."""
        if isinstance(spec, dict):
            if set(map(str, spec)) != {"dense"}:
                raise ValueError(f"layers[{index}]: a dense layer takes only 'dense' (its "
                                 f"width), got keys {', '.join(map(str, spec))}")
            spec = spec["dense"]
        return cls(in_shape, spec_int(f"layers[{index}]", spec), init_scale=init_scale)

    def __init__(self, in_shape, n_out: int, bias: bool = True, init_scale: float = 1.0):
        super().__init__()
        self.in_shape = tuple(in_shape) if not isinstance(in_shape, int) else (in_shape,)
        self.out_shape = (int(n_out),)
        n_in = math.prod(self.in_shape)
        bound = init_scale / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound)) if bias else None

    def drive_up(self, s_lo, ctx=None):
        return nn.functional.linear(s_lo.flatten(1), self.weight, self.bias)

    def drive_down(self, s_hi, ctx=None):
        return (s_hi @ self.down_weight()).view(s_hi.shape[0], *self.in_shape)

    def bias_up(self):
        return self.bias

    def add_up_(self, acc, s_lo, ctx, alpha):
        acc.addmm_(s_lo.flatten(1), self.weight.t(), alpha=alpha)

    def add_down_(self, acc, s_hi, ctx, alpha):
        acc.view(acc.shape[0], -1).addmm_(s_hi, self.down_weight(), alpha=alpha)

    def contrast(self, r_lo, r_hi):
        b = r_hi.shape[0]
        grads = [-(r_hi.t() @ r_lo.flatten(1)) / b]
        if self.bias is not None:
            grads.append(-r_hi.mean(0))
        return self._with_feedback(grads)

    def macs(self) -> int:
        return self.weight.numel()
