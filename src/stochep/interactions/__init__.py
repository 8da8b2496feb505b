"""Couplings between adjacent layers. One class per kind of interaction (rain-style)."""
from .base import Interaction
from .dense import Dense

__all__ = ["Interaction", "Dense"]
