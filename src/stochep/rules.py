"""Learning rules: how a batch becomes ``p.grad`` (one registry for config, CLI, trainer, tools).

A rule is built from the run config and the run's random streams, and has one method::

    rule = RULES[cfg.algo].from_config(cfg, streams)
    result = rule.gradients(net, x, y)     # writes p.grad for every parameter

so any ``torch.optim`` optimizer applies the update. ``rule.infer(net, x, dynamics, steps,
rng, average)`` gives the states a prediction is read from and ``rule.predict(...)`` the classes; by
default the free phase (a rule that trains a different computation, e.g. a feedforward pass,
overrides them so evaluation matches training; ``frames.FrameSequence`` sums over frames).

The built-in rules are EP (``ep.py``, eq. 9/14/22), surrogate-gradient BPTT (``bptt.py``),
feedback alignment (``fa.py``) and implicit differentiation (``implicit.py``). Adding one:
subclass :class:`LearningRule` in a new file and decorate it with ``@RULES.register("name")``;
then ``--algo name`` trains with it and ``stochep memory`` measures it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import Registry

RULES = Registry("algo")


@dataclass
class StepResult:
    """What a rule reports about one batch, besides the gradients it wrote."""

    free: list[torch.Tensor]  # states the prediction is read from (the free equilibrium)
    loss: torch.Tensor  # per-sample cost at ``free``
    nudged: list[torch.Tensor] | None = None  # first nudged phase's contrast state, if any
    scores: torch.Tensor | None = None  # class scores to predict from (default: of free[-1])


class LearningRule:
    """Interface of a learning rule (see the module docstring)."""

    name = "rule"

    @classmethod
    def from_config(cls, cfg, streams) -> LearningRule:
        """The rule ``cfg`` describes, drawing its randomness from ``streams`` (``rng.Streams``)."""
        raise NotImplementedError

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        """Write ``p.grad`` for batch ``(x, y)``; ``init``: the free phase's initial states
        (zeros when ``None``; a warm start as in eq. 18)."""
        raise NotImplementedError

    def infer(self, net, x: torch.Tensor, dynamics, steps: int, rng,
              average: int = 1) -> list[torch.Tensor]:
        """States the prediction for ``x`` is read from: the free phase's final states, or with
        ``average = k > 1`` their mean over its last ``k`` steps (config ``readout_average``)."""
        return dynamics.relax(net, x, net.zero_states(len(x), x.dtype), steps, rng,
                              average_last=average).average

    def predict(self, net, x: torch.Tensor, dynamics, steps: int, rng,
                average: int = 1) -> torch.Tensor:
        """Predicted classes for ``x``: the readout of :meth:`infer`'s output states."""
        return net.predict(self.infer(net, x, dynamics, steps, rng, average)[-1])
