"""Recording a network's activity step by step (what snnTorch users call a monitor).

:func:`record` runs a free phase (and optionally a nudged phase from it) and returns, for every
layer and every step, the membrane states ``xi`` (eq. 7), the rates ``rho(xi)`` (eq. 2) and the
spikes that drove each step (eq. 1 / 21; the rates themselves in mean field)::

    rec = record(net, x, steps=30)                       # mean field, no randomness
    rec = record(net, x, steps=30, seed=0)               # the net's own spikes, seeded
    rec = record(net, x, 30, y=y, beta=0.3, nudge_steps=10, seed=0)
    rec.states[k]    # layer k+1: [T + 1, B, *shape] (index 0: the start)
    rec.spikes[k]    # [T, B, *shape]
    rec.firing_rate()  # per layer: the mean spike rate over steps, samples and neurons
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .dynamics import Dynamics
from .rng import SpikeRNG


@dataclass
class Recording:
    states: list[torch.Tensor]  # per layer [T + 1, B, *shape]: the start, then after each step
    rates: list[torch.Tensor]  # per layer [T + 1, B, *shape]: rho(states)
    spikes: list[torch.Tensor]  # per layer [T, B, *shape]: the signals that drove each step
    T_free: int
    T_nudge: int

    def firing_rate(self) -> list[float]:
        """Per layer, the mean of the spikes over steps, samples and neurons."""
        return [s.float().mean().item() for s in self.spikes]


@torch.no_grad()
def record(net, x: torch.Tensor, steps: int, *, seed: int | None = None,
           y: torch.Tensor | None = None, beta: float = 0.0, nudge_steps: int = 0,
           dynamics: Dynamics | None = None, init: list[torch.Tensor] | None = None
           ) -> Recording:
    """Activity of ``net`` on the batch ``x`` over a free phase of ``steps`` steps, then, with
    ``nudge_steps > 0``, a nudged phase of strength ``beta`` toward the labels ``y``.

    ``seed=None`` runs in mean field (the neuron's ``mean_field()``: spikes are the rates);
    an integer seed draws the network's own spikes from ``SpikeRNG(seed)`` on ``x``'s device.
    ``dynamics`` sets the update order and speed options (default: synchronous, as
    ``Dynamics()``); ``init`` the starting states (default: zeros).
    """
    net.check_input(x)
    if nudge_steps and y is None:
        raise ValueError("nudge_steps > 0 needs the labels y to nudge toward")
    neuron = net.neuron if seed is not None else net.neuron.mean_field()
    rng = SpikeRNG(seed, x.device) if seed is not None and neuron.stochastic else None
    dyn = dynamics or Dynamics()
    target = None if y is None else net.target(y.to(x.device), x.dtype)
    states = net.zero_states(len(x), x.dtype, x.device) if init is None else list(init)
    seen = [[s.clone()] for s in states]
    fired: list[list[torch.Tensor]] = [[] for _ in states]

    def observe(_, spikes):
        for k, s in enumerate(spikes):
            fired[k].append(s.detach().clone())

    carry = None
    for t in range(steps + nudge_steps):
        b = beta if t >= steps else 0.0
        res = dyn.relax(net, x, states, 1, rng, b, target if b else None, neuron=neuron,
                        observer=observe, carry=carry)
        states, carry = res.final, res.carry
        for k, s in enumerate(states):
            seen[k].append(s.clone())
    stacked = [torch.stack(r) for r in seen]
    return Recording(stacked, [neuron.rate(s) for s in stacked],
                     [torch.stack(f) for f in fired], steps, nudge_steps)
