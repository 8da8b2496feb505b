"""Couplings between adjacent layers. One class per kind of interaction (rain-style)."""
from .attention import HopfieldAttention
from .base import Interaction
from .conv import ConvPool
from .dense import Dense

__all__ = ["ConvPool", "Dense", "HopfieldAttention", "Interaction"]
