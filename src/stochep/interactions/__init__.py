"""Couplings between adjacent layers. One class per kind of interaction (rain-style)."""
from .base import Interaction
from .conv import ConvPool
from .dense import Dense

__all__ = ["ConvPool", "Dense", "Interaction"]
