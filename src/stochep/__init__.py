"""stochep: stochastic Equilibrium Propagation for spiking convergent recurrent networks."""
from .bptt import BPTT
from .config import Config
from .costs import COSTS, Cost
from .dynamics import Dynamics, PhaseResult, relax, step
from .ep import EP, ep_gradients
from .fa import FA
from .implicit import ID
from .lif import LIF
from .network import EPNetwork
from .neurons import NEURONS, FullPrecision, Neuron, NeuronModel, StatefulNeuron, rho
from .rng import SpikeRNG, Streams
from .rules import RULES, LearningRule, StepResult
from .sigma_delta import PredictiveCoding, SigmaDelta

__all__ = [
           "BPTT",
           "COSTS",
           "EP",
           "FA",
           "ID",
           "LIF",
           "NEURONS",
           "RULES",
           "Config",
           "Cost",
           "Dynamics",
           "EPNetwork",
           "FullPrecision",
           "LearningRule",
           "Neuron",
           "NeuronModel",
           "PhaseResult",
           "PredictiveCoding",
           "SigmaDelta",
           "SpikeRNG",
           "StatefulNeuron",
           "StepResult",
           "Streams",
           "ep_gradients",
           "relax",
           "rho",
           "step",
]
__version__ = "0.1.0"
