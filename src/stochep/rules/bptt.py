"""Backprop-through-time through the same dynamics: the learning rule ``bptt`` (baseline and
gradient reference).

Runs ``T`` steps of :func:`stochep.engine.dynamics.step` from zero states with autograd on and
backpropagates the batch-mean output cost ``net.loss`` (whatever cost the network carries,
``costs.py``) through every step. In mean-field mode this is the exact gradient of the
(settled) dynamics, which EP approximates (Theorem 3.2); with stochastic spikes the spikes pass
gradients straight through (eq. 6), the usual surrogate-gradient BPTT of a spiking network.

Options (:attr:`BPTT.options`; set in the rule's section of the config's ``rules:`` mapping, e.g.
``rules: {bptt: {clip: 1.0}}`` or ``--set rules.bptt.clip=1``; their defaults reproduce the plain
method above, and a config without a ``bptt`` section trains with :attr:`BPTT.tuned`):

- ``rules.bptt.spikes``: ``"same"`` unrolls the network's own neurons (spiking, straight-through);
  ``"rate"`` unrolls the mean-field (rate) dynamics, with no spikes and an exact gradient, while
  evaluation still runs the network's own (spiking) neurons. Comparing the two on one network
  separates the effect of spikes on training from that of the learning rule. (``spikes: rate``
  instead makes the whole network mean-field, in training and evaluation, for EP and BPTT.)
- ``rules.bptt.loss_last = k``: the cost is averaged over the states of the last ``k`` steps instead
  of only the final one.
- ``rules.bptt.truncate = k``: backpropagate through the last ``k`` steps only (0: all ``T``).
- ``rules.bptt.clip``: clip the global gradient norm to this value (0: off).

What the plain method needs on these networks (a clipped gradient norm, the cost averaged over
the last steps) and the measurements behind it: docs/baselines.md, "BPTT: what the baseline
needs".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from stochep.engine.dynamics import phase_constants, step
from stochep.engine.neurons.base import build_neuron
from stochep.engine.rng import SpikeRNG, Streams
from stochep.rules.base import RULES, LearningRule, StepResult
from stochep.validation import check_choice, check_int_at_least

BPTT_SPIKES = ("same", "rate")


@RULES.register("bptt")
@dataclass(frozen=True)
class BPTT(LearningRule):
    """The BPTT rule and its settings (module docstring); ``streams`` supplies the spikes."""

    T: int
    spikes: str = "same"
    loss_last: int = 1
    truncate: int = 0
    clip: float = 0.0
    streams: Streams | None = None

    options: ClassVar[dict] = {"spikes": "same", "loss_last": 1, "truncate": 0, "clip": 0.0}
    # Tuned on digits (module docstring): 91% validation in 3 epochs where SGD 0.01 without
    # clipping gave 76%. A preset's ``rules: {bptt: ...}`` section replaces this one.
    tuned: ClassVar[dict] = {"batch_size": 16, "optimizer": "sgd", "lr": 0.05, "clip": 1.0,
                             "loss_last": 5}
    legacy_keys: ClassVar[dict] = {f"bptt_{k}": k for k in options}
    legacy_section: ClassVar[bool] = True

    def __post_init__(self):
        _check_options(self.T, self.spikes, self.loss_last, self.truncate, self.clip)

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> BPTT:
        o = cls.settings(cfg)
        return cls(cfg.T_free, o["spikes"], o["loss_last"], o["truncate"], o["clip"], streams)

    @classmethod
    def check_config(cls, cfg) -> None:
        if build_neuron(cfg).stateful and cls.settings(cfg)["spikes"] == "same":
            raise ValueError(f"neuron {cfg.neuron!r} keeps internal state, which BPTT does not "
                             "unroll; use --algo ep, or rules.bptt.spikes=rate (mean-field BPTT)")

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        free, loss = bptt_gradients(net, x, y, self.T, self.streams and self.streams.spike,
                                    spikes=self.spikes, loss_last=self.loss_last,
                                    truncate=self.truncate, clip=self.clip, init=init)
        return StepResult(free, loss)


def _check_options(T, spikes, loss_last, truncate, clip) -> None:
    """One-line errors for BPTT settings, named as their config keys."""
    check_int_at_least("T_free", T, 1)
    check_choice("rules.bptt.spikes", spikes, BPTT_SPIKES)
    check_int_at_least("rules.bptt.loss_last", loss_last, 1)
    if loss_last > T:
        raise ValueError(f"rules.bptt.loss_last must be <= T_free ({T}), got {loss_last}")
    check_int_at_least("rules.bptt.truncate", truncate, 0)
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip >= 0:
        raise ValueError(f"rules.bptt.clip must be >= 0 (0: off), got {clip!r}")


def bptt_gradients(net, x: torch.Tensor, y: torch.Tensor, T: int,
                   rng: SpikeRNG | None = None, *, spikes: str = "same", loss_last: int = 1,
                   truncate: int = 0, clip: float = 0.0, init: list[torch.Tensor] | None = None
                   ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Write ``p.grad`` from BPTT over ``T`` free steps; returns (final states, per-sample loss).

    The returned loss is the cost of the final state (as EP reports it), whatever
    ``loss_last`` trains on. ``init``: initial states (default zeros). See the module
    docstring for the options.
    """
    _check_options(T, spikes, loss_last, truncate, clip)
    net.check_batch(x, y)
    target = net.target(y, x.dtype)
    neuron = net.neuron.mean_field() if spikes == "rate" else net.neuron
    with torch.enable_grad():
        consts = phase_constants(net, x, neuron)
        states = net.zero_states(x.shape[0], x.dtype) if init is None else \
            [s.detach().to(x.dtype) for s in init]
        total = None
        for t in range(1, T + 1):
            if truncate and t == T - truncate + 1:
                states = [s.detach() for s in states]
            states = step(net, consts, states, rng, neuron=neuron)[0]
            if t > T - loss_last:
                lt = net.loss(states[-1], target)
                total = lt if total is None else total + lt
        params = list(net.parameters())
        # allow_unused: a short truncation cuts the lowest layers off the cost
        grads = torch.autograd.grad(total.mean() / loss_last, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    return [s.detach() for s in states], lt.detach()
