"""Neuron models: what a layer's units do with their drive (paper eq. 1, 2, 7, 21).

A neuron model is an object the dynamics (``dynamics.py``) ask four things of:

- ``rate(xi)``: the firing probability ``rho(xi)`` of a state (eq. 2);
- ``sample(rates, rng)``: one step's spikes for every layer (eq. 1 / eq. 21);
- ``gain`` and ``project_``: one step is ``xi <- project_((1 - lam) xi + lam (gain * drive -
  beta dL/dxi))`` (eq. 7, 8), ``gain`` being ``rho'`` inside the state box ``[low, high]``;
- ``mean_field()``: the same model with spikes replaced by rates (Theorem 3.1), which the
  gradient checks, calibration and mean-field BPTT run.

A neuron with internal state across steps (membrane potential, filters, a step counter) is a
:class:`StatefulNeuron`: instead of ``sample`` it has ``start``, ``emit`` and ``integrate``, and
the dynamics thread its state through a phase and on into the nudged phases
(``dynamics.step_stateful``).

Built in: the paper's neuron :class:`Neuron` (``hard-sigmoid``), its rate model
(``full-precision``), and the deterministic baselines of figure 3: ``lif`` (``lif.py``),
``predictive-coding`` and ``sigma-delta`` (``sigma_delta.py``). Adding a model: subclass
:class:`NeuronModel` in a new file and register it in ``NEURONS``; then ``neuron: <name>`` in a
config builds it (its ``from_config`` reads ``neuron_options``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .registry import Registry
from .rng import SpikeRNG
from .validation import check_choice, check_positive

SPIKE_MODES = ("bernoulli", "poisson", "rate")
NEURONS = Registry("neuron")


def rho(xi: torch.Tensor, kappa: float) -> torch.Tensor:
    """Hard sigmoid firing probability, eq. 2."""
    return (kappa * xi).clamp_(0.0, 1.0)


class NeuronModel:
    """Interface of a neuron model (see the module docstring)."""

    name = "neuron"
    low: float = 0.0
    high: float = 1.0
    stateful = False  # True for a StatefulNeuron

    @classmethod
    def from_config(cls, cfg) -> NeuronModel:
        return cls(**cfg.neuron_options)

    @property
    def stochastic(self) -> bool:
        raise NotImplementedError

    @property
    def gain(self) -> float:
        raise NotImplementedError

    def rate(self, xi: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, rates: list[torch.Tensor], rng: SpikeRNG | None) -> list[torch.Tensor]:
        raise NotImplementedError

    def mean_field(self) -> NeuronModel:
        raise NotImplementedError

    def project_(self, v: torch.Tensor) -> torch.Tensor:
        """Clamp ``v`` into the state box ``[low, high]`` in place."""
        return v.clamp_(self.low, self.high)


class HardSigmoidRate(NeuronModel):
    """The rate ``rho(xi) = clamp(kappa xi, 0, 1)`` (eq. 2) of a model with a ``kappa``: gain
    ``kappa`` inside the state box ``[0, 1/kappa]``."""

    kappa: float = 2.0

    @property
    def gain(self) -> float:
        return self.kappa

    @property
    def high(self) -> float:
        return 1.0 / self.kappa

    def rate(self, xi: torch.Tensor) -> torch.Tensor:
        return rho(xi, self.kappa)


@NEURONS.register("hard-sigmoid")
@dataclass(frozen=True)
class Neuron(HardSigmoidRate):
    """The paper's stochastic neuron: hard-sigmoid rate, sampled spikes.

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
        u = rng.uniform(sum(r.numel() for r in rates), rates[0].dtype)
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

    def __post_init__(self):
        super().__post_init__()
        if self.spikes != "rate":
            raise ValueError(f"neuron 'full-precision' does not spike; spikes must be 'rate', "
                             f"got {self.spikes!r}")

    @classmethod
    def from_config(cls, cfg) -> FullPrecision:
        return cls(cfg.kappa, "rate", cfg.dt, **cfg.neuron_options)


class StatefulNeuron(HardSigmoidRate):
    """A neuron with internal state (``carry``) that persists across steps and phases.

    - ``start(states) -> carry``: the state at the start of a batch (its free phase);
    - ``emit(states, carry, rng) -> (signals, carry)``: what each layer sends its neighbours
      this step (spikes, or a decoded spike train);
    - ``integrate(states, inputs, carry, lam) -> (states, carry)``: the new states from each
      layer's input term ``inputs[i] = lam (gain drive_i - beta dL/dxi_i)``.

    ``rate(xi)`` is what EP's contrasts read; ``mean_field()`` the hard-sigmoid rate model with
    the same gain (gradient checks, calibration). A carry is never changed in place, so two
    nudged phases can start from the same one.
    """

    stateful = True

    @property
    def stochastic(self) -> bool:
        return False

    def mean_field(self) -> Neuron:
        return Neuron(self.kappa, "rate")

    @classmethod
    def from_config(cls, cfg) -> StatefulNeuron:
        return cls(kappa=cfg.kappa, **cfg.neuron_options)

    def sample(self, rates, rng):
        raise ValueError(f"neuron {self.name!r} keeps internal state: it runs through "
                         "Dynamics.relax (EP, evaluation), not the stateless step (BPTT)")

    def start(self, states: list[torch.Tensor]):
        raise NotImplementedError

    def emit(self, states: list[torch.Tensor], carry, rng):
        raise NotImplementedError

    def integrate(self, states: list[torch.Tensor], inputs: list[torch.Tensor], carry,
                  lam: float):
        raise NotImplementedError
