"""Discretised neuron dynamics of the free and nudged phases (paper eq. 6, 7, 8).

One step updates every layer from the previous step's spikes (synchronous, Jacobi style):

    drive_i = up_{i-1}(s_{i-1}) + down_i(s_{i+1})            (no feedback term for the top layer)
    xi_i   <- P[ (1 - lam) xi_i + lam * (kappa * drive_i - beta * dL/dxi_i) ]

with ``s = B(rho(xi))`` (or rates in mean-field mode), ``dL/dxi_out = kappa (rho(xi_out) - y)``
for the cost ``L = 1/2 ||rho(xi_out) - y||^2`` and zero elsewhere, and ``P`` the projection
(clamp) onto ``[0, 1/kappa]``.

Formulation choice (README, "Formulation"): eq. 7 read literally uses ``rho'(xi)``, which is zero
at the initial state ``xi = 0``, so no neuron would ever leave zero. We take ``rho' = kappa`` on
the closed interval ``[0, 1/kappa]`` and project after each step. In mean-field mode one step is
then exactly a projected gradient step of size ``lam`` on ``F = E + beta * L`` (eq. 4, 8), so F
never increases when ``lam`` is below ``2 / ||Hessian of F||`` (tested in
``tests/test_dynamics.py``).

Speed: the parts of the drive that are constant within a phase (the clamped input's drive
``up_0(x)`` and the biases) are computed once per phase, pre-scaled by ``lam * kappa``
(:func:`phase_constants`); dense couplings then accumulate into the decayed state in place with
one GEMM each (``addmm_``).
"""
from __future__ import annotations

import torch

from .rng import SpikeRNG


def input_drive(net, x: torch.Tensor) -> torch.Tensor:
    """``up_0(x)``: the clamped input's drive into layer 1 (bias included)."""
    first = net.interactions[0]
    return first.drive_up(x, first.context(x))


def phase_constants(net, x: torch.Tensor) -> list[torch.Tensor | None]:
    """Per-layer drive that is constant in a phase, times ``lam * kappa``."""
    a = net.lam * net.neuron.kappa
    consts = [a * input_drive(net, x)]
    for inter in net.interactions[1:]:
        b = inter.bias_up()
        consts.append(None if b is None else a * b)
    return consts


def step(net, consts: list, states: list[torch.Tensor], rng: SpikeRNG | None = None,
         beta: float = 0.0, target: torch.Tensor | None = None) -> list[torch.Tensor]:
    """One Euler step of eq. 7 (free phase) or eq. 8 (``beta != 0``, nudged phase)."""
    lam, kappa = net.lam, net.neuron.kappa
    a = lam * kappa
    inters = net.interactions
    rates = net.rates(states)
    spikes = net.neuron.sample(rates, rng)
    ctxs = [None] + [inters[k].context(rates[k - 1]) for k in range(1, len(inters))]
    n = len(states)
    new = []
    for i in range(n):
        c = consts[i]
        v = states[i] * (1.0 - lam) if c is None else torch.add(c, states[i], alpha=1.0 - lam)
        if i > 0:
            inters[i].add_up_(v, spikes[i - 1], ctxs[i], a)
        if i + 1 < n:
            inters[i + 1].add_down_(v, spikes[i + 1], ctxs[i + 1], a)
        if i == n - 1 and beta != 0.0:
            v = v.sub_(rates[i] - target.view_as(rates[i]), alpha=a * beta)
        new.append(v.clamp_(0.0, 1.0 / kappa))
    return new


def relax(net, x: torch.Tensor, states: list[torch.Tensor], steps: int,
          rng: SpikeRNG | None = None, beta: float = 0.0,
          target: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Run one phase of ``steps`` steps from ``states``; returns the final states."""
    consts = phase_constants(net, x)
    for _ in range(steps):
        states = step(net, consts, states, rng, beta, target)
    return states
