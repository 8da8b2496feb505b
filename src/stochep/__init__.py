"""stochep: stochastic Equilibrium Propagation for spiking convergent recurrent networks."""
from .bptt import BPTT
from .config import Config
from .costs import COSTS, Cost
from .dynamics import Dynamics, PhaseResult, relax, step
from .ep import EP, ep_gradients
from .network import EPNetwork
from .neurons import NEURONS, Neuron, NeuronModel, rho
from .rng import SpikeRNG, Streams
from .rules import RULES, LearningRule, StepResult

__all__ = [
           "BPTT",
           "COSTS",
           "EP",
           "NEURONS",
           "RULES",
           "Config",
           "Cost",
           "Dynamics",
           "EPNetwork",
           "LearningRule",
           "Neuron",
           "NeuronModel",
           "PhaseResult",
           "SpikeRNG",
           "StepResult",
           "Streams",
           "ep_gradients",
           "relax",
           "rho",
           "step",
]
__version__ = "0.1.0"
