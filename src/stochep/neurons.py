"""Stochastic spiking neuron: hard-sigmoid rate and spike generation (paper eq. 1, 2, 21).

``rho(xi) = clamp(kappa * xi, 0, 1)`` (eq. 2) is the firing probability. Spikes are
``Bernoulli(rho(xi))`` (eq. 1), Poisson escape-rate ``Bernoulli(1 - exp(-rho(xi) * dt))``
(eq. 21), or, in the deterministic mean-field ``rate`` mode, the rate ``rho(xi)`` itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .rng import SpikeRNG
from .validation import check_choice, check_positive

SPIKE_MODES = ("bernoulli", "poisson", "rate")


def rho(xi: torch.Tensor, kappa: float) -> torch.Tensor:
    """Hard sigmoid firing probability, eq. 2."""
    return (kappa * xi).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Neuron:
    """Neuron model shared by every layer of a network.

    kappa: gain of the hard sigmoid (eq. 2); states live in ``[0, 1/kappa]``.
    spikes: "bernoulli" (eq. 1), "poisson" (eq. 21) or "rate" (mean field, Theorem 3.1).
    dt: time step of the Poisson escape-rate process.
    """

    kappa: float = 2.0
    spikes: str = "bernoulli"
    dt: float = 1.0

    def __post_init__(self):
        check_positive("kappa", self.kappa)
        check_choice("spikes", self.spikes, SPIKE_MODES)
        check_positive("dt", self.dt)

    @property
    def stochastic(self) -> bool:
        return self.spikes != "rate"

    def rate(self, xi: torch.Tensor) -> torch.Tensor:
        return rho(xi, self.kappa)

    def fire_probability(self, rate: torch.Tensor) -> torch.Tensor:
        """Probability of a spike in one step: rho (eq. 1) or 1 - exp(-rho dt) (eq. 21)."""
        if self.spikes == "poisson":
            return -torch.expm1(-rate * self.dt)
        return rate

    def sample(self, rates: list[torch.Tensor], rng: SpikeRNG | None) -> list[torch.Tensor]:
        """Spikes for every layer from their rates, drawing one flat block of uniforms."""
        if not self.stochastic:
            return rates
        if rng is None:
            raise ValueError("rng: a SpikeRNG is required for stochastic spikes "
                             f"(spikes={self.spikes!r}); pass rng= or use spikes='rate'")
        u = rng.uniform(sum(r.numel() for r in rates), rates[0].dtype)
        out, k = [], 0
        for r in rates:
            n = r.numel()
            s = (u[k:k + n].view_as(r) < self.fire_probability(r)).to(r.dtype)
            # Under autograd (BPTT baseline) spikes pass gradients straight through (eq. 6).
            out.append(r + (s - r).detach() if r.requires_grad else s)
            k += n
        return out
