"""Equilibrium Propagation estimators (paper eq. 9/14 and eq. 22).

Each estimator runs a free phase from zero states, one or two nudged phases started from the free
equilibrium, and writes ``p.grad`` for every parameter with the sign of a loss gradient, so any
``torch.optim`` optimizer applies the update. Contrasts use mean-field rates ``rho(xi)`` at the
end of each phase (Theorem 3.1/3.2), computed in at least float32.

- ``two-phase``  (eq. 9/14): ``g = (dE/dtheta(xi^beta) - dE/dtheta(xi^*)) / beta``; bias O(beta).
- ``random-sign``: two-phase with the sign of beta drawn per batch from an explicit generator;
  the O(beta) bias cancels on average (Laborieux et al. 2021).
- ``three-phase`` (eq. 22): ``g = (dE/dtheta(xi^{+beta}) - dE/dtheta(xi^{-beta})) / (2 beta)``;
  bias O(beta^2). Eq. 22 is printed with ``1/beta``; the symmetric difference needs ``1/(2 beta)``
  to estimate the gradient itself rather than twice it.

Two opt-in variance reductions for stochastic spikes (not in the paper; README "Formulation"),
both leaving the mean-field estimate unchanged:

- ``average_last = k``: each contrast uses the state averaged over the last ``k`` steps of its
  phase (the whole phase if it is shorter) instead of the final state (the next phase still
  starts from the final state);
- ``shared_noise`` (three-phase): the ``-beta`` phase replays the spike noise of the ``+beta``
  phase (the spike stream is rewound), so the noise common to both cancels in their difference.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .dynamics import Dynamics
from .rng import SpikeRNG
from .validation import check_choice, check_ep_noise_options, check_int_at_least, check_nonzero

ESTIMATORS = ("two-phase", "random-sign", "three-phase")


@dataclass(frozen=True)
class EPConfig:
    beta: float = 0.5
    T_free: int = 60
    T_nudge: int = 15
    estimator: str = "random-sign"
    average_last: int = 1  # contrast from the mean state of each phase's last k steps
    shared_noise: bool = False  # three-phase: the -beta phase replays the +beta spikes

    def __post_init__(self):
        check_nonzero("beta", self.beta)
        check_int_at_least("T_free", self.T_free, 1)
        check_int_at_least("T_nudge", self.T_nudge, 1)
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_ep_noise_options(self.average_last, self.shared_noise, self.estimator,
                               min(self.T_free, self.T_nudge))


@dataclass
class EPResult:
    free: list[torch.Tensor]  # free-phase equilibrium states
    loss: torch.Tensor  # per-sample cost L at the free equilibrium
    nudged: list[torch.Tensor] | None = None  # contrast state of the first nudged phase


def _pairs(net, x: torch.Tensor, states: list[torch.Tensor]):
    """(interaction, rates below, rates above) for each interaction, in at least float32."""
    states = [s if s.dtype == torch.float64 else s.float() for s in states]
    rates = net.rates(states)
    return zip(net.interactions, [x.to(rates[0].dtype)] + rates[:-1], rates)


def contrasts(net, x: torch.Tensor, states: list[torch.Tensor]) -> list[torch.Tensor]:
    """``dE/dtheta`` at ``states`` for every parameter, in ``net.parameters()`` order."""
    return [g for inter, lo, hi in _pairs(net, x, states) for g in inter.contrast(lo, hi)]


def contrast_difference(net, x: torch.Tensor, hi: list[torch.Tensor], lo: list[torch.Tensor],
                        scale: float) -> list[torch.Tensor]:
    """``(dE/dtheta(hi) - dE/dtheta(lo)) / scale``, one interaction at a time.

    Subtracting per interaction keeps one parameter-sized temporary alive instead of two full
    sets of contrasts, which dominated EP's memory on small batches.
    """
    out = []
    for (inter, a_lo, a_hi), (_, b_lo, b_hi) in zip(_pairs(net, x, hi), _pairs(net, x, lo)):
        for a, b in zip(inter.contrast(a_lo, a_hi), inter.contrast(b_lo, b_hi)):
            out.append(a.sub_(b).div_(scale))
    return out


def _write_grads(net, grads: list[torch.Tensor]) -> None:
    for p, g in zip(net.parameters(), grads):
        p.grad = g.to(p.dtype).view_as(p)


def ep_gradients(net, x: torch.Tensor, y: torch.Tensor, cfg: EPConfig,
                 rng: SpikeRNG | None = None,
                 sign_generator: torch.Generator | None = None,
                 dynamics: Dynamics | None = None, dynamics_net=None) -> EPResult:
    """Run the EP phases on batch ``(x, y)`` and write ``p.grad``; see the module docstring.

    ``dynamics`` sets the update order, early exit and compilation (default: synchronous, full
    length). ``dynamics_net`` runs the phases on a low-precision copy of ``net`` (e.g. bf16,
    see :func:`low_precision_copy`); contrasts and gradients stay in float32.
    """
    net.check_batch(x, y)
    master, x_master = net, x
    if dynamics_net is not None:
        net = dynamics_net
        x = x.to(next(net.parameters()).dtype)
    target = net.target(y, x.dtype)
    dyn = dynamics or Dynamics()

    def phase(start, steps, beta=0.0):
        """(final state, state for the contrast) of one phase."""
        final = dyn.relax(net, x, start, steps, rng, beta, target, cfg.average_last)
        return final, dyn.last_average

    with torch.no_grad():
        free, free_c = phase(net.zero_states(x.shape[0], x.dtype), cfg.T_free)
        beta = cfg.beta
        if cfg.estimator == "three-phase":
            rewind = rng.state_dict() if cfg.shared_noise and rng is not None else None
            hi = phase(free, cfg.T_nudge, beta)[1]
            if rewind is not None:
                rng.load_state_dict(rewind)
            lo = phase(free, cfg.T_nudge, -beta)[1]
            scale = 2.0 * beta
        else:
            if cfg.estimator == "random-sign":
                if sign_generator is None:
                    raise ValueError("sign_generator: random-sign estimator needs a torch.Generator")
                beta = beta if torch.randint(0, 2, (1,), generator=sign_generator).item() else -beta
            hi, lo, scale = phase(free, cfg.T_nudge, beta)[1], free_c, beta
        grads = contrast_difference(master, x_master, hi, lo, scale)
        _write_grads(master, grads)
        dtype = x_master.dtype
        return EPResult(free=free, loss=master.loss(free[-1].to(dtype), target.to(dtype)),
                        nudged=hi)


def low_precision_copy(net, dtype=torch.bfloat16):
    """A copy of ``net`` in ``dtype`` for the dynamics; refresh it with :func:`sync_copy`."""
    return copy.deepcopy(net).to(dtype)


@torch.no_grad()
def sync_copy(dst, src) -> None:
    """Copy the float32 master weights into the low-precision dynamics copy."""
    for a, b in zip(dst.parameters(), src.parameters()):
        a.copy_(b)
