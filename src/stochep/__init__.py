"""stochep: stochastic Equilibrium Propagation for spiking convergent recurrent networks."""
from .dynamics import relax, step
from .ep import EPConfig, ep_gradients
from .network import EPNetwork
from .neurons import Neuron, rho
from .rng import SpikeRNG

__all__ = ["EPConfig", "EPNetwork", "Neuron", "SpikeRNG", "ep_gradients", "relax", "rho", "step"]
__version__ = "0.1.0"
