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
``tests/test_dynamics.py``). The input drive ``up_0(x)`` is computed once per phase.
"""
from __future__ import annotations

import torch

from .rng import SpikeRNG


def step(net, x_drive: torch.Tensor, states: list[torch.Tensor], rng: SpikeRNG | None = None,
         beta: float = 0.0, target: torch.Tensor | None = None) -> list[torch.Tensor]:
    """One Euler step of eq. 7 (free phase) or eq. 8 (``beta != 0``, nudged phase)."""
    neuron, lam = net.neuron, net.lam
    kappa = neuron.kappa
    inters = net.interactions
    rates = net.rates(states)
    spikes = neuron.sample(rates, rng)
    n = len(states)
    new = []
    for i in range(n):
        if i == 0:
            drive = x_drive
        else:
            drive = inters[i].drive_up(spikes[i - 1], inters[i].context(rates[i - 1]))
        if i + 1 < n:
            drive = drive + inters[i + 1].drive_down(spikes[i + 1], inters[i + 1].context(rates[i]))
        v = torch.add(states[i] * (1.0 - lam), drive, alpha=lam * kappa)
        if i == n - 1 and beta != 0.0:
            v = v - (lam * beta * kappa) * (rates[i] - target.view_as(rates[i]))
        new.append(v.clamp(0.0, 1.0 / kappa))
    return new


def input_drive(net, x: torch.Tensor) -> torch.Tensor:
    """``up_0(x)``: the clamped input's drive into layer 1, constant within a phase."""
    first = net.interactions[0]
    return first.drive_up(x, first.context(x))


def relax(net, x: torch.Tensor, states: list[torch.Tensor], steps: int,
          rng: SpikeRNG | None = None, beta: float = 0.0,
          target: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Run one phase of ``steps`` steps from ``states``; returns the final states."""
    x_drive = input_drive(net, x)
    for _ in range(steps):
        states = step(net, x_drive, states, rng, beta, target)
    return states
