"""Continual EP (C-EP; Ernoult et al. 2020): the weights change at every step of the nudged phase,
so no free equilibrium has to be stored until the phase ends.

After the free phase settles at ``s_0`` (eq. 7), each nudged step ``t`` (eq. 8) moves the states
from ``s_{t-1}`` to ``s_t`` and then every weight by the local contrast of the two::

    theta <- theta - eta * (dE/dtheta(s_t) - dE/dtheta(s_{t-1})) / beta

with the per-step learning rate ``eta`` (``rules.cep.lr_step``; 0: the run's ``lr``). The
increments telescope: with ``eta -> 0`` their sum is ``-eta`` times the two-phase EP estimate
(eq. 9) at the same ``beta`` and phase lengths, and ``tests/test_continual.py`` checks it.
The update happens inside the rule, so the run's optimizer must change nothing: its tuned
section sets plain SGD without momentum or weight decay, and the rule writes zero gradients.
Works with every interaction (dense, conv, attention) and spiking neurons (one spike draw per
step, as EP); one nudged phase, ``+beta``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from stochep.engine.dynamics import Dynamics
from stochep.engine.rng import Streams
from stochep.rules.base import RULES, LearningRule, StepResult
from stochep.rules.ep import contrast_difference
from stochep.validation import check_int_at_least, check_positive


@RULES.register("cep")
@dataclass(frozen=True)
class CEP(LearningRule):
    """Continual EP and its settings (module docstring)."""

    beta: float
    T_free: int
    T_nudge: int
    lr_step: float
    dynamics: Dynamics | None = field(default=None, compare=False)
    streams: Streams | None = field(default=None, compare=False)

    options: ClassVar[dict] = {"lr_step": 0.0}
    # the rule updates the weights itself: the optimizer must be a plain, inert SGD
    tuned: ClassVar[dict] = {"optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0}

    def __post_init__(self):
        check_positive("beta", self.beta)
        check_int_at_least("T_free", self.T_free, 1)
        check_int_at_least("T_nudge", self.T_nudge, 1)
        check_positive("rules.cep.lr_step", self.lr_step)

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> CEP:
        lr_step = float(cls.settings(cfg)["lr_step"]) or cfg.lr
        return cls(cfg.beta, cfg.T_free, cfg.T_nudge, lr_step, Dynamics.from_config(cfg),
                   streams)

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.optimizer != "sgd" or cfg.momentum or cfg.weight_decay:
            raise ValueError("algo cep updates the weights inside the nudged phase; the "
                             "optimizer must change nothing: optimizer sgd, momentum 0, "
                             f"weight_decay 0 (got {cfg.optimizer}, {cfg.momentum}, "
                             f"{cfg.weight_decay})")

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        net.check_batch(x, y)
        rng = self.streams.spike if self.streams is not None else None
        dyn = self.dynamics or Dynamics()
        target = net.target(y, x.dtype)
        with torch.no_grad():
            start = net.zero_states(x.shape[0], x.dtype) if init is None else init
            free = dyn.relax(net, x, start, self.T_free, rng)
            prev, carry = free.final, free.carry
            for _ in range(self.T_nudge):  # the phase constants follow the changing weights
                res = dyn.relax(net, x, prev, 1, rng, self.beta, target, carry=carry)
                for p, g in zip(net.parameters(),
                                contrast_difference(net, x, res.final, prev, self.beta)):
                    p.sub_(g.to(p.dtype).view_as(p), alpha=self.lr_step)
                prev, carry = res.final, res.carry
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        return StepResult(free=free.final, loss=net.loss(free.final[-1], target), nudged=prev)
