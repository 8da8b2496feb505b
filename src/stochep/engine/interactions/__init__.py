"""Couplings between adjacent layers. One class per kind of interaction (rain-style), each
registered in ``INTERACTIONS`` under the key a config's ``layers:`` entry names it by."""
from .attention import HopfieldAttention
from .base import INTERACTIONS, Interaction
from .conv import ConvPool
from .dense import Dense

__all__ = ["INTERACTIONS", "ConvPool", "Dense", "HopfieldAttention", "Interaction"]
