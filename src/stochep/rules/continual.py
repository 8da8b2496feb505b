"""Continual EP (C-EP; Ernoult et al. 2020): the weights change at every step of the nudged phase,
so no free equilibrium has to be stored until the phase ends.

After the free phase settles at ``s_0`` (eq. 7), each nudged step ``t`` (eq. 8) moves the states
from ``s_{t-1}`` to ``s_t`` and then every weight by the local contrast of the two::

    g_t = (dE/dtheta(s_t) - dE/dtheta(s_{t-1})) / beta,      theta <- optimizer step on g_t

The increments telescope: their sum is the two-phase EP estimate (eq. 9) at the same ``beta`` and
phase lengths, so with plain SGD at a small rate the summed steps approach ``-lr`` times EP's
update (``tests/test_continual.py`` checks it). The steps go through the run's own optimizer,
as in Laborieux et al.'s code, so its per-layer rates, schedule and AdamW's per-weight scaling
(which the EP recipes rely on) apply to every step: the rule steps the optimizer after each
nudged step but the last and leaves the last increment in ``p.grad`` for the trainer's step
(:attr:`steps_optimizer`). Without an optimizer (a rule called by hand) the intermediate steps
are plain SGD at ``lr_step``.

Estimators (the config's ``estimator``):

- ``two-phase``: one nudged phase at ``+beta``;
- ``random-sign``: its sign drawn per batch (the run's sign stream);
- ``three-phase``: the ``+beta`` phase with increments over ``2 beta``, then ``T_nudge`` free
  steps back towards the free equilibrium (no update), then a ``-beta`` phase whose increments
  over ``-2 beta`` continue the update: the sum is eq. 22's ``(dE(s^+) - dE(s^-)) / (2 beta)``
  up to how far the middle phase returned. Nothing is stored between the phases.

Works with every interaction (dense, conv, attention) and spiking neurons (one spike draw per
step, as EP). ``average_last`` and ``shared_noise`` do not apply.

**State trace** (``rules.cep.trace = a`` in (0, 1], default 1: none). With spiking neurons the
state of one step carries that step's spike noise, and every increment differences two of them.
With ``a < 1`` the contrasts are taken on a trace of the states instead, the exponential average
``z_t = z_{t-1} + a (s_t - z_{t-1})`` that each neuron can keep for itself (local in space and
time, like the eligibility traces of on-chip rules)::

    g_t = (dE/dtheta(z_t) - dE/dtheta(z_{t-1})) / beta,      z_0 = the free phase's average

The increments still telescope, to ``(dE/dtheta(z_T) - dE/dtheta(z_0)) / beta``: EP's estimate
with each equilibrium averaged over its last ``~2/a`` steps, as ``average_last`` averages it
(``z_0`` is the free phase's ``average_last`` average, which the trace has been following).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from stochep.engine.dynamics import Dynamics
from stochep.engine.rng import Streams
from stochep.rules.base import RULES, LearningRule, StepResult
from stochep.rules.ep import ESTIMATORS, contrast_difference
from stochep.validation import (
    check_choice,
    check_int_at_least,
    check_positive,
    check_unit_interval,
)


@RULES.register("cep")
@dataclass(frozen=True)
class CEP(LearningRule):
    """Continual EP and its settings (module docstring)."""

    beta: float
    T_free: int
    T_nudge: int
    lr_step: float = 0.01
    estimator: str = "two-phase"
    trace: float = 1.0
    average_last: int = 1
    dynamics: Dynamics | None = field(default=None, compare=False)
    streams: Streams | None = field(default=None, compare=False)

    options: ClassVar[dict] = {"lr_step": 0.0, "trace": 1.0}
    # The digits recipe (docs/hardware.md, "Continual EP"): AdamW stepping at every nudged
    # step, three-phase; 3e-4 sat at the edge (5e-4 collapsed), 2e-4 has a margin.
    tuned: ClassVar[dict] = {"optimizer": "adamw", "lr": 0.0002, "estimator": "three-phase"}
    # the rule steps the run's optimizer inside a batch; the trainer's step is the last one
    steps_optimizer: ClassVar[bool] = True

    def __post_init__(self):
        check_positive("beta", self.beta)
        check_int_at_least("T_free", self.T_free, 1)
        check_int_at_least("T_nudge", self.T_nudge, 1)
        check_positive("rules.cep.lr_step", self.lr_step)
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_unit_interval("rules.cep.trace", self.trace)
        check_int_at_least("average_last", self.average_last, 1)

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> CEP:
        settings = cls.settings(cfg)
        lr_step = float(settings["lr_step"]) or cfg.lr
        trace = settings["trace"]
        # the trace starts from the free phase's average over its last steps
        average = cfg.average_last if trace != 1.0 else 1
        return cls(cfg.beta, cfg.T_free, cfg.T_nudge, lr_step, cfg.estimator, trace, average,
                   Dynamics.from_config(cfg), streams)

    def _sign(self) -> float:
        if self.estimator != "random-sign":
            return 1.0
        gen = self.streams.sign if self.streams is not None else None
        if gen is None:
            raise ValueError("estimator random-sign needs the run's sign stream (streams)")
        return 1.0 if torch.randint(0, 2, (1,), generator=gen).item() else -1.0

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None, optimizer=None) -> StepResult:
        """Run the phases, stepping ``optimizer`` (or SGD at ``lr_step``) after every nudged
        step but the last, whose increment is left in ``p.grad`` for the caller's step."""
        net.check_batch(x, y)
        rng = self.streams.spike if self.streams is not None else None
        dyn = self.dynamics or Dynamics()
        target = net.target(y, x.dtype)
        params = list(net.parameters())
        three = self.estimator == "three-phase"
        beta = self.beta * self._sign()
        # (nudge, scale of the increments, whether the phase updates the weights)
        phases = [(beta, 2 * beta if three else beta, True)]
        if three:
            phases += [(0.0, 0.0, False), (-beta, -2 * beta, True)]
        n_updates = self.T_nudge * (2 if three else 1)
        done = 0
        with torch.no_grad():
            start = dyn.initial(net, x) if init is None else init  # zeros or the sweep
            free = dyn.relax(net, x, start, self.T_free, rng, average_last=self.average_last)
            prev, carry = free.final, free.carry
            trace = free.average  # = free.final without a trace (average_last 1)
            nudged = None
            for nudge, scale, updates in phases:
                for _ in range(self.T_nudge):  # the phase constants follow the changing weights
                    res = dyn.relax(net, x, prev, 1, rng, nudge, target, carry=carry)
                    now = res.final if self.trace == 1.0 else \
                        [z + self.trace * (s - z) for z, s in zip(trace, res.final)]
                    if updates:
                        grads = contrast_difference(net, x, now, trace, scale)
                        for p, g in zip(params, grads):
                            p.grad = g.to(p.dtype).view_as(p)
                        done += 1
                        if done < n_updates:
                            self._step(params, optimizer)
                    prev, carry, trace = res.final, res.carry, now
                if nudged is None:
                    nudged = prev
        return StepResult(free=free.final, loss=net.loss(free.final[-1], target), nudged=nudged)

    def _step(self, params, optimizer) -> None:
        if optimizer is not None:
            optimizer.step()
            return
        for p in params:
            p.sub_(p.grad, alpha=self.lr_step)
