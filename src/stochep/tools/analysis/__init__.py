"""``stochep analyze NAME``: the paper's figures 3-6 and Theorem 3.1 as runnable analyses.

Each analysis is a module with ``run(setup, out_dir) -> dict``; it writes ``NAME.json`` always
and ``NAME.png`` with matplotlib (``pip install stochep[plot]``).

- ``stability`` (figure 3): ``stability.py``;
- ``firing`` (figure 4): ``firing.py``;
- ``error-signal`` (figures 5, 6): ``error_signal.py``;
- ``mean-field`` (Theorem 3.1): ``mean_field.py``.
"""
from __future__ import annotations

from . import error_signal, firing, mean_field, stability
from .common import Setup

ANALYSES = {"stability": stability.run, "firing": firing.run,
            "error-signal": error_signal.run, "mean-field": mean_field.run}

__all__ = ["ANALYSES", "Setup"]
