"""The paper's neuron (eq. 1, 2, 21): hard-sigmoid rate ``rho(xi) = clamp(kappa xi, 0, 1)``,
spikes sampled from it (Bernoulli or Poisson escape rate), and its rate model (``full-precision``,
non-spiking EP)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from stochep.engine.neurons.base import NEURONS, SPIKE_MODES, NeuronModel
from stochep.engine.rng import SpikeRNG
from stochep.validation import check_choice, check_positive


def rho(xi: torch.Tensor, kappa: float) -> torch.Tensor:
    """Hard sigmoid firing probability, eq. 2 (at ``kappa = 1`` the clamp alone: one kernel
    instead of two, the same values)."""
    if kappa == 1.0:
        return xi.clamp(0.0, 1.0)
    return (kappa * xi).clamp_(0.0, 1.0)


BOXES = ("kappa", "unit")


class HardSigmoidRate(NeuronModel):
    """The rate ``rho(xi) = clamp(kappa xi, 0, 1)`` (eq. 2) of a model with a ``kappa``, on one
    of two state boxes (``box``):

    - ``"kappa"`` (default): ``[0, 1/kappa]``, where ``rho' = kappa`` throughout; every kappa
      spans rates 0..1.
    - ``"unit"``: ``[0, 1]``, eq. 2 read literally. For ``kappa < 1`` the rate is capped at
      ``kappa``; for ``kappa > 1`` it saturates above ``xi = 1/kappa``, where ``rho' = 0``, so the
      gain is given per neuron (``state_gain``, :meth:`gain_at`).
    """

    kappa: float = 2.0
    box: str = "kappa"
    config_fields = ("kappa", "spikes", "dt")

    @property
    def gain(self) -> float:
        return self.kappa

    @property
    def high(self) -> float:
        return 1.0 if self.box == "unit" else 1.0 / self.kappa

    @property
    def state_gain(self) -> bool:
        return self.box == "unit" and self.kappa > 1.0

    def gain_at(self, xi: torch.Tensor) -> torch.Tensor:
        """``rho'(xi)``: ``kappa`` where ``kappa xi <= 1`` (the closed lower end, so a neuron at
        0 can start), 0 where the rate has saturated."""
        return (xi * self.kappa <= 1.0).to(xi.dtype) * self.kappa

    def rate(self, xi: torch.Tensor) -> torch.Tensor:
        return rho(xi, self.kappa)


@NEURONS.register("hard-sigmoid")
@dataclass(frozen=True)
class Neuron(HardSigmoidRate):
    """The paper's stochastic neuron: hard-sigmoid rate, sampled spikes.

    kappa: gain of the hard sigmoid (eq. 2); states live in ``[0, 1/kappa]`` (``box="kappa"``)
    or ``[0, 1]`` (``box="unit"``, eq. 2 literally; :class:`HardSigmoidRate`).
    spikes: "bernoulli" (eq. 1), "poisson" (eq. 21) or "rate" (mean field, Theorem 3.1).
    dt: time step of the Poisson escape-rate process.
    """

    kappa: float = 2.0
    spikes: str = "bernoulli"
    dt: float = 1.0
    box: str = "kappa"

    def __post_init__(self):
        check_positive("kappa", self.kappa)
        check_choice("spikes", self.spikes, SPIKE_MODES)
        check_positive("dt", self.dt)
        check_choice("box", self.box, BOXES)

    @classmethod
    def from_config(cls, cfg) -> Neuron:
        return cls(cfg.kappa, cfg.spikes, cfg.dt, **cfg.neuron_options)

    @property
    def stochastic(self) -> bool:
        return self.spikes != "rate"

    def mean_field(self) -> Neuron:
        return replace(self, spikes="rate")

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
        # uniforms in float32 whatever the states' dtype: in bf16 about 2^-9 of them would round
        # to 1.0, so a neuron at rate 1 would miss spikes and every probability would be low
        u = rng.uniform(sum(r.numel() for r in rates), torch.float32)
        out, k = [], 0
        for r in rates:
            n = r.numel()
            # spike = [u < p], written straight into a float tensor (one pass, not two)
            s = torch.lt(u[k:k + n].view_as(r), self.fire_probability(r).detach(),
                         out=torch.empty_like(r, requires_grad=False))
            # Under autograd (BPTT baseline) spikes pass gradients straight through (eq. 6).
            out.append(r + (s - r).detach() if r.requires_grad else s)
            k += n
        return out


@NEURONS.register("full-precision")
@dataclass(frozen=True)
class FullPrecision(Neuron):
    """Non-spiking EP (figure 3, Table 1): eq. 7 with ``B(rho(.))`` replaced by ``rho(.)``, i.e.
    the hard-sigmoid neuron in mean-field mode, in training and evaluation."""

    spikes: str = "rate"
    config_fields = ("kappa", "spikes", "dt")  # spikes: "rate" whatever is set

    def __post_init__(self):
        super().__post_init__()
        if self.spikes != "rate":
            raise ValueError(f"neuron 'full-precision' does not spike; spikes must be 'rate', "
                             f"got {self.spikes!r}")

    @classmethod
    def from_config(cls, cfg) -> FullPrecision:
        return cls(cfg.kappa, "rate", cfg.dt, **cfg.neuron_options)
