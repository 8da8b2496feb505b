"""Fixed-point rounding, and membrane states on an N-bit grid (low-precision hardware).

Rounding of a value ``x`` measured in grid steps (``x = v / delta``):

- nearest:     ``R(x) = round(x)``  (ties to even); deterministic, but an update smaller than
  half a step is lost every time;
- stochastic:  ``R(x) = floor(x) + [u < x - floor(x)]`` with ``u ~ U[0, 1)``, so
  ``E[R(x)] = x``: unbiased, an update of a tenth of a step lands one step with probability 0.1
  (Gupta et al. 2015, "Deep learning with limited numerical precision").

:class:`StateGrid` puts the states of a layer on ``2^N`` levels spanning the neuron's state box
``[low, high]`` (``[0, 1/kappa]`` for the paper's neuron)::

    delta = (high - low) / (2^N - 1),    xi <- low + delta * R((xi - low) / delta)

after every step of the dynamics (``dynamics.py``), with uniforms from the spike stream (nearest
rounding when there is none, in mean field). Under autograd (BPTT) the rounding passes gradients
straight through, as the spikes do.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

ROUNDINGS = ("stochastic", "nearest")


def round_grid(x: torch.Tensor, rounding: str, u: torch.Tensor | None = None) -> torch.Tensor:
    """``R(x)`` (module docstring) of values in grid steps; ``u``: uniforms in [0, 1) shaped like
    ``x`` for stochastic rounding."""
    if rounding == "nearest":
        return torch.round(x)
    if u is None:
        raise ValueError("stochastic rounding needs uniforms u")
    low = torch.floor(x)
    return low + (u < (x - low)).to(x.dtype)


@dataclass(frozen=True)
class StateGrid:
    """States on ``2^bits`` levels of the neuron's box, rounded with ``rounding``."""

    bits: int
    rounding: str = "stochastic"

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 24:
            raise ValueError(f"quantize.states must be an integer in 1..24 bits, got {self.bits!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"quantize.rounding must be one of {', '.join(ROUNDINGS)}, "
                             f"got {self.rounding!r}")

    def __call__(self, states: list[torch.Tensor], neuron, rng=None) -> list[torch.Tensor]:
        """``states`` on the grid of ``neuron``'s box (module docstring); stochastic rounding
        draws one uniform per state from ``rng`` (a ``SpikeRNG``), nearest without one."""
        lo, hi = float(neuron.low), float(neuron.high)
        delta = (hi - lo) / (2 ** self.bits - 1)
        stochastic = self.rounding == "stochastic" and rng is not None
        u = rng.uniform(sum(s.numel() for s in states), torch.float32) if stochastic else None
        out, at = [], 0
        for s in states:
            x = (s.detach() - lo) / delta
            uu = None if u is None else u[at:at + s.numel()].view(s.shape).to(x.dtype)
            q = (lo + delta * round_grid(x, "stochastic" if stochastic else "nearest", uu)
                 ).clamp_(lo, hi)
            out.append(s + (q - s).detach() if s.requires_grad else q)
            at += s.numel()
        return out
