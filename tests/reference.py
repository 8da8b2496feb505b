"""A straightforward reference of the same EP math, as public EP codebases write it.

Every step recomputes the whole energy ``E_stoch + beta L`` (input term included) and takes its
gradient with autograd; spikes come from ``torch.bernoulli`` and pass gradients straight through
(eq. 6). Used by the tests and the throughput benchmark (``benchmarks/speed/throughput.py``) to
cross-check the fast engine; not part of the installed package, not for training.
"""
from __future__ import annotations

import torch

from stochep.rules.ep import EP, contrasts


def reference_step(net, x, states, beta=0.0, target=None, generator=None):
    neuron = net.neuron
    with torch.enable_grad():
        leaves = [s.detach().requires_grad_(True) for s in states]
        rates = net.rates(leaves)
        if neuron.stochastic:
            p = [neuron.fire_probability(r) for r in rates]
            spikes = [r + (torch.bernoulli(q.detach(), generator=generator) - r).detach()
                      for r, q in zip(rates, p)]
        else:
            spikes = rates
        e = net.energy_stoch(x, leaves, spikes).sum()
        if beta != 0.0:
            e = e + beta * net.loss(leaves[-1], target).sum()
        grads = torch.autograd.grad(e, leaves)
    return [neuron.project_(s - net.lam * g).detach() for s, g in zip(states, grads)]


def reference_relax(net, x, states, steps, beta=0.0, target=None, generator=None):
    for _ in range(steps):
        states = reference_step(net, x, states, beta, target, generator)
    return states


def reference_ep_gradients(net, x, y, cfg: EP, generator=None, sign=1.0):
    """Two-phase (or three-phase) EP with the reference dynamics; writes ``p.grad``."""
    target = net.target(y, x.dtype)
    free = reference_relax(net, x, net.zero_states(x.shape[0], x.dtype), cfg.T_free, 0.0,
                           None, generator)
    beta = cfg.beta * sign
    if cfg.estimator == "three-phase":
        hi = reference_relax(net, x, free, cfg.T_nudge, beta, target, generator)
        lo = reference_relax(net, x, free, cfg.T_nudge, -beta, target, generator)
        scale = 2 * beta
    else:
        hi, lo, scale = reference_relax(net, x, free, cfg.T_nudge, beta, target, generator), free, beta
    for p, a, b in zip(net.parameters(), contrasts(net, x, hi), contrasts(net, x, lo)):
        p.grad = ((a - b) / scale).to(p.dtype).view_as(p)
    return free
