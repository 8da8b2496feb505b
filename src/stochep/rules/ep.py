"""Equilibrium Propagation, the learning rule ``ep`` (paper eq. 9/14 and eq. 22).

EP runs a free phase (from zero states, or from given initial states: the warm start of eq. 18),
then nudged phases started from the free equilibrium, and writes ``p.grad`` for every parameter
with the sign of a loss gradient, so any ``torch.optim`` optimizer applies the update. Every
estimator is one pair of nudges ``(beta1, beta2)`` (``beta = 0`` is the free equilibrium)::

    g = (dE/dtheta(xi^{beta1}) - dE/dtheta(xi^{beta2})) / (beta1 - beta2)

Contrasts use mean-field rates ``rho(xi)`` at the end of each phase (Theorem 3.1/3.2), computed
in at least float32.

- ``two-phase``  (eq. 9/14): nudges ``(beta, 0)``; bias O(beta).
- ``random-sign``: ``(+-beta, 0)``, the sign drawn per batch from an explicit generator; the
  O(beta) bias cancels on average (Laborieux et al. 2021).
- ``three-phase`` (eq. 22): ``(beta, -beta)``, so the scale is ``2 beta``; bias O(beta^2). Eq. 22 is printed with ``1/beta``; the symmetric difference needs ``1/(2 beta)``
  to estimate the gradient itself rather than twice it.

Two opt-in variance reductions for stochastic spikes (not in the paper; docs/formulation.md),
both leaving the mean-field estimate unchanged:

- ``average_last = k``: each contrast uses the state averaged over the last ``k`` steps of its
  phase (the whole phase if it is shorter) instead of the final state (the next phase still
  starts from the final state);
- ``shared_noise`` (three-phase): the ``-beta`` phase replays the spike noise of the ``+beta``
  phase (the spike stream is rewound), so the noise common to both cancels in their difference.
  With one nudged phase (two-phase, random-sign) the nudged phase branches off the free phase
  ``T_nudge`` steps before its end and replays the spikes of the free phase's last ``T_nudge``
  steps, which are the contrast's other side: the same noise on both sides, and no steps added
  (``T_free + T_nudge`` in all; the nudged phase starts from the free state at step
  ``T_free - T_nudge``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from stochep.engine.dynamics import Dynamics, phase_constants
from stochep.engine.rng import SpikeRNG, Streams
from stochep.rules.base import RULES, LearningRule, StepResult
from stochep.validation import (
    check_choice,
    check_ep_noise_options,
    check_int_at_least,
    check_nonzero,
    check_positive,
)

ESTIMATORS = ("two-phase", "random-sign", "three-phase")
DYNAMICS_DTYPES = ("float32", "bfloat16")


@RULES.register("ep")
@dataclass(frozen=True)
class EP(LearningRule):
    """The EP rule and its settings (built from the run config by :meth:`from_config`).

    ``dynamics`` runs the phases (update order, early exit, compilation; default synchronous,
    full length); ``dynamics_dtype`` "bfloat16" runs them on a low-precision copy of the
    network (contrasts and gradients stay float32); ``streams`` supplies the spike and sign
    randomness of :meth:`gradients`.
    """

    beta: float
    T_free: int
    T_nudge: int
    estimator: str
    average_last: int = 1  # contrast from the mean state of each phase's last k steps
    shared_noise: bool = False  # three-phase: the -beta phase replays the +beta spikes
    dynamics: Dynamics | None = field(default=None, compare=False)
    dynamics_dtype: str = "float32"
    streams: Streams | None = field(default=None, compare=False)

    def __post_init__(self):
        check_nonzero("beta", self.beta)  # a rule built by hand may nudge with either sign
        check_int_at_least("T_free", self.T_free, 1)
        check_int_at_least("T_nudge", self.T_nudge, 1)
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_ep_noise_options(self.average_last, self.shared_noise, self.estimator,
                               self.T_free - self.T_nudge if self.estimator != "three-phase"
                               else min(self.T_free, self.T_nudge))
        check_choice("dynamics_dtype", self.dynamics_dtype, DYNAMICS_DTYPES)

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> EP:
        # a config's beta is the nudge strength: the estimator chooses the phases' signs
        check_positive("beta", cfg.beta)
        return cls(cfg.beta, cfg.T_free, cfg.T_nudge, cfg.estimator, cfg.average_last,
                   cfg.shared_noise, Dynamics.from_config(cfg), cfg.dynamics_dtype, streams)

    def nudges(self, sign_generator: torch.Generator | None = None) -> tuple[float, float]:
        """``(beta1, beta2)`` of the estimator (random-sign draws its sign here)."""
        if self.estimator == "three-phase":
            return self.beta, -self.beta
        if self.estimator == "random-sign":
            if sign_generator is None:
                raise ValueError("sign_generator: random-sign estimator needs a torch.Generator")
            up = torch.randint(0, 2, (1,), generator=sign_generator).item()
            return (self.beta if up else -self.beta), 0.0
        return self.beta, 0.0

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        streams = self.streams
        low = None
        if self.dynamics_dtype != "float32":
            low = low_precision_copy(net, getattr(torch, self.dynamics_dtype))
        return ep_gradients(net, x, y, self, streams and streams.spike,
                            streams and streams.sign, self.dynamics, low, init)


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
    sets of contrasts, which dominated EP's memory on small batches. The input layer is the
    same in both phases, so a bilinear first interaction takes one contrast of the difference
    (:meth:`Interaction.contrast_difference`).
    """
    return [d.div_(scale)
            for (inter, a_lo, a_hi), (_, b_lo, b_hi) in zip(_pairs(net, x, hi), _pairs(net, x, lo))
            for d in inter.contrast_difference(a_lo, a_hi, b_lo, b_hi)]


def _write_grads(net, grads: list[torch.Tensor]) -> None:
    for p, g in zip(net.parameters(), grads):
        p.grad = g.to(p.dtype).view_as(p)


def ep_gradients(net, x: torch.Tensor, y: torch.Tensor, ep: EP,
                 rng: SpikeRNG | None = None,
                 sign_generator: torch.Generator | None = None,
                 dynamics: Dynamics | None = None, dynamics_net=None,
                 init: list[torch.Tensor] | None = None) -> StepResult:
    """Run the EP phases of ``ep`` on batch ``(x, y)`` and write ``p.grad`` (module docstring).

    ``dynamics`` sets the update order, early exit and compilation (default: synchronous, full
    length). ``dynamics_net`` runs the phases on a low-precision copy of ``net`` (see
    :func:`low_precision_copy`); contrasts and gradients stay in float32. ``init``: the free
    phase's initial states (default: the dynamics' ``start``, zeros or the bottom-up sweep).
    """
    net.check_batch(x, y)
    master, x_master = net, x
    if dynamics_net is not None:
        net = dynamics_net
        x = x.to(next(net.parameters()).dtype)
    target = net.target(y, x.dtype)
    dyn = dynamics or Dynamics()

    def phase(start, steps, beta=0.0, carry=None):
        return dyn.relax(net, x, start, steps, rng, beta, target, ep.average_last, carry=carry,
                         consts=consts)

    with torch.no_grad():
        consts = phase_constants(net, x)  # the input's drive, shared by every phase
        if init is None:
            init = dyn.initial(net, x)
        else:
            init = [s.to(x.dtype) for s in init]
        b1, b2 = ep.nudges(sign_generator)
        branch = ep.shared_noise and b2 == 0.0
        if branch:  # one nudge with shared noise: branch off the free phase's last T_nudge
            head = phase(init, ep.T_free - ep.T_nudge)
            start, carry = head.final, head.carry
            rewind = rng.mark() if rng is not None else None
            free = phase(start, ep.T_nudge, 0.0, carry)
            if rewind is not None:
                rng.rewind(rewind)
            hi = phase(start, ep.T_nudge, b1, carry).average
        else:
            free = phase(init, ep.T_free)
            rewind = rng.mark() if ep.shared_noise and rng is not None else None
            hi = phase(free.final, ep.T_nudge, b1, free.carry).average
        if b2 == 0.0:
            lo = free.average
        else:
            if rewind is not None:
                rng.rewind(rewind)
            lo = phase(free.final, ep.T_nudge, b2, free.carry).average
        grads = contrast_difference(master, x_master, hi, lo, b1 - b2)
        _write_grads(master, grads)
        dtype = x_master.dtype
        return StepResult(free=free.final,
                          loss=master.loss(free.final[-1].to(dtype), target.to(dtype)), nudged=hi)


def low_precision_copy(net, dtype=torch.bfloat16):
    """A copy of ``net`` in ``dtype`` for the dynamics (the weights as they are now)."""
    return copy.deepcopy(net).to(dtype)
