"""Deterministic LIF neuron with a low-pass spike filter, in the style of EqSpike (figure 3b).

EqSpike (Martin et al. 2021) published no code; this is the reading used here. Per layer and
step, with the layer's input term ``I = gain drive - beta dL/dxi`` of eq. 7/8:

    s = 1[V >= theta]                 spike (deterministic threshold)
    V <- V - theta s                  reset by subtraction ("zero": V <- V (1 - s))
    r <- (1 - a) r + a s              low-pass trace of the spikes: the rate EP reads
    V <- (1 - lam) V + lam I          leaky integration
    xi = r / kappa                    the state EP's contrasts see, so rho(xi) = r

Neighbours receive the binary spikes ``s``. The default ``theta = 0.25`` is ``lam / kappa`` at the
paper's ``lam = 0.5, kappa = 2``: with reset by subtraction the long-run rate is then about
``kappa I - lam / 2``, the hard sigmoid shifted down by a quarter, and ``a = 0.2`` averages the
spike train over about five steps. The trace is the only smoothing, so the states keep
oscillating (the paper's point in figure 3b).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stochep.engine.neurons.base import NEURONS
from stochep.engine.neurons.stateful import StatefulNeuron
from stochep.validation import check_choice, check_positive, check_unit_interval


@NEURONS.register("lif")
@dataclass(frozen=True)
class LIF(StatefulNeuron):
    """Low-pass-filtered LIF (module docstring). ``neuron_options``: theta, a, reset."""

    kappa: float = 2.0
    theta: float = 0.25
    a: float = 0.2
    reset: str = "subtract"

    def __post_init__(self):
        check_positive("kappa", self.kappa)
        check_positive("theta", self.theta)
        check_unit_interval("a", self.a)
        check_choice("reset", self.reset, ("subtract", "zero"))

    def start(self, states):
        """Membrane potentials at rest; traces at the rates of the initial states."""
        return [torch.zeros_like(xi) for xi in states], [self.rate(xi) for xi in states]

    def emit(self, states, carry, rng=None):
        potentials, traces = carry
        spikes, reset, new_traces = [], [], []
        for v, r in zip(potentials, traces):
            s = (v >= self.theta).to(v.dtype)
            reset.append(v - self.theta * s if self.reset == "subtract" else v * (1.0 - s))
            new_traces.append(torch.lerp(r, s, self.a))
            spikes.append(s)
        return spikes, (reset, new_traces)

    def integrate(self, states, inputs, carry, lam):
        potentials, traces = carry
        potentials = [(1.0 - lam) * v + inp for v, inp in zip(potentials, inputs)]
        return [r / self.kappa for r in traces], (potentials, traces)
