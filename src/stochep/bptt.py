"""Backprop-through-time through the same dynamics (baseline and gradient reference).

Runs ``T_free`` steps of :func:`stochep.dynamics.step` from zero states with autograd on and
backpropagates the batch-mean cost ``L = 1/2 ||rho(xi_out) - y||^2`` through every step. In
mean-field mode this is the exact gradient of the settled dynamics, which EP approximates
(Theorem 3.2); with stochastic spikes the spikes pass gradients straight through (eq. 6), the
usual surrogate-gradient BPTT of a spiking network.
"""
from __future__ import annotations

import torch

from .dynamics import phase_constants, step
from .rng import SpikeRNG


def bptt_gradients(net, x: torch.Tensor, y: torch.Tensor, T: int,
                   rng: SpikeRNG | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Write ``p.grad`` from BPTT over ``T`` free steps; returns (final states, per-sample loss)."""
    net.check_batch(x, y)
    target = net.target(y, x.dtype)
    with torch.enable_grad():
        consts = phase_constants(net, x)
        states = net.zero_states(x.shape[0], x.dtype)
        for _ in range(T):
            states = step(net, consts, states, rng)
        loss = net.loss(states[-1], target)
        params = list(net.parameters())
        grads = torch.autograd.grad(loss.mean(), params)
    for p, g in zip(params, grads):
        p.grad = g
    return [s.detach() for s in states], loss.detach()
