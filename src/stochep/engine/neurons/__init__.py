"""Neuron models (eq. 1, 2, 21): the interface and registry (``base.py``), the paper's
hard-sigmoid neuron and its rate model (``hard_sigmoid.py``), neurons with internal state
(``stateful.py``) and the figure-3 baselines (``lif.py``, ``sigma_delta.py``)."""
from stochep.engine.neurons.base import NEURONS, SPIKE_MODES, NeuronModel
from stochep.engine.neurons.hard_sigmoid import FullPrecision, HardSigmoidRate, Neuron, rho
from stochep.engine.neurons.lif import LIF
from stochep.engine.neurons.sigma_delta import PredictiveCoding, SigmaDelta
from stochep.engine.neurons.stateful import StatefulNeuron

__all__ = [
           "LIF",
           "NEURONS",
           "SPIKE_MODES",
           "FullPrecision",
           "HardSigmoidRate",
           "Neuron",
           "NeuronModel",
           "PredictiveCoding",
           "SigmaDelta",
           "StatefulNeuron",
           "rho",
]
