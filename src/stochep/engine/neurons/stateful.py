"""Neurons with internal state across steps (membrane potential, filters, a step counter): the
base class of ``lif`` and the figure-3 baselines (``lif.py``, ``sigma_delta.py``)."""
from __future__ import annotations

import torch

from stochep.engine.neurons.hard_sigmoid import HardSigmoidRate, Neuron


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

    config_fields = ("kappa",)  # spikes and dt are the paper neuron's

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
