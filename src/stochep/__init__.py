"""stochep: stochastic Equilibrium Propagation for spiking convergent recurrent networks.

The package is layered; each layer imports only the ones above it in this list:

- ``engine/``: network, neurons, interactions, dynamics, costs, spike streams;
- ``rules/``: learning rules (EP, BPTT, FA, implicit differentiation, temporal EP);
- ``training/``: config, presets, trainer, checkpoints;
- ``tools/``: gradient checks, diagnosis, memory, energy, sweeps, reproduction, analyses;
- ``data/``: dataset loaders (used by training and tools);
- ``cli.py``: the ``stochep`` command.
"""
from stochep.data import Dataset
from stochep.engine.costs import COSTS, Cost
from stochep.engine.dynamics import Dynamics, PhaseResult, relax, step
from stochep.engine.network import EPNetwork
from stochep.engine.neurons import (
                                    LIF,
                                    NEURONS,
                                    FullPrecision,
                                    Neuron,
                                    NeuronModel,
                                    PredictiveCoding,
                                    SigmaDelta,
                                    StatefulNeuron,
                                    rho,
)
from stochep.engine.record import Recording, record
from stochep.engine.rng import SpikeRNG, Streams
from stochep.rules import (
                                    BPTT,
                                    EP,
                                    FA,
                                    ID,
                                    RULES,
                                    LearningRule,
                                    StepResult,
                                    TrainingDiverged,
                                    ep_gradients,
)
from stochep.tools.nir import export_nir, load_nir
from stochep.training import Config, ConfigError, Trainer, load_preset

__all__ = [
    "BPTT", "COSTS", "EP", "FA", "ID", "LIF", "NEURONS", "RULES", "Config", "ConfigError", "Cost",
    "Dataset", "Dynamics", "EPNetwork", "FullPrecision", "LearningRule", "Neuron", "NeuronModel",
    "PhaseResult", "PredictiveCoding", "Recording", "SigmaDelta", "SpikeRNG", "StatefulNeuron", "StepResult",
    "Streams", "Trainer", "TrainingDiverged", "ep_gradients", "export_nir", "load_nir", "load_preset", "record", "relax", "rho", "step",
]
__version__ = "0.1.0"
