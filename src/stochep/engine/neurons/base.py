"""Neuron models: what a layer's units do with their drive (paper eq. 1, 2, 7, 21).

A neuron model is an object the dynamics (``dynamics.py``) ask four things of:

- ``rate(xi)``: the firing probability ``rho(xi)`` of a state (eq. 2);
- ``sample(rates, rng)``: one step's spikes for every layer (eq. 1 / eq. 21);
- ``gain`` and ``project_``: one step is ``xi <- project_((1 - lam) xi + lam (gain * drive -
  beta dL/dxi))`` (eq. 7, 8), ``gain`` being ``rho'`` inside the state box ``[low, high]``; a
  model whose ``rho'`` varies inside its box sets ``state_gain = True`` and gives it per neuron
  with ``gain_at(xi)`` (a tensor like ``xi``), which the dynamics then use instead;
- ``mean_field()``: the same model with spikes replaced by rates (Theorem 3.1), which the
  gradient checks, calibration and mean-field BPTT run.

A neuron with internal state across steps (membrane potential, filters, a step counter) is a
:class:`StatefulNeuron`: instead of ``sample`` it has ``start``, ``emit`` and ``integrate``, and
the dynamics thread its state through a phase and on into the nudged phases
(``dynamics.step_stateful``).

Built in: the paper's neuron :class:`Neuron` (``hard-sigmoid``), its rate model
(``full-precision``), and the deterministic baselines of figure 3: ``lif`` (``lif.py``),
``predictive-coding`` and ``sigma-delta`` (``sigma_delta.py``). Adding a model: subclass
:class:`NeuronModel` in a new file and register it in ``NEURONS``; then ``neuron: <name>`` in a
config builds it (its ``from_config`` reads ``neuron_options``).
"""
from __future__ import annotations

import torch

from stochep.engine.rng import SpikeRNG
from stochep.registry import CONFIG_CHECKS, NEURONS
from stochep.validation import check_options

SPIKE_MODES = ("bernoulli", "poisson", "rate")


class NeuronModel:
    """Interface of a neuron model (see the module docstring)."""

    name = "neuron"
    low: float = 0.0
    high: float = 1.0
    stateful = False  # True for a StatefulNeuron
    state_gain = False  # True: rho' varies inside the box, given per neuron by gain_at(xi)
    # the top-level config fields its from_config reads (the paper's neuron: kappa, spikes, dt);
    # setting another of them for this neuron is an error, not silently ignored
    config_fields: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg) -> NeuronModel:
        return cls(**cfg.neuron_options)

    @property
    def stochastic(self) -> bool:
        raise NotImplementedError

    @property
    def gain(self) -> float:
        raise NotImplementedError

    def gain_at(self, xi: torch.Tensor) -> torch.Tensor:
        """``rho'(xi)`` per neuron (used when ``state_gain``); by default the constant gain."""
        return torch.full_like(xi, self.gain)

    def rate(self, xi: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, rates: list[torch.Tensor], rng: SpikeRNG | None) -> list[torch.Tensor]:
        raise NotImplementedError

    def mean_field(self) -> NeuronModel:
        raise NotImplementedError

    def project_(self, v: torch.Tensor) -> torch.Tensor:
        """Clamp ``v`` into the state box ``[low, high]`` in place."""
        return v.clamp_(self.low, self.high)


NEURON_FIELDS = ("kappa", "spikes", "dt")  # top-level config fields that belong to a neuron


def _option_names(cls) -> list[str]:
    import inspect

    return [n for n in inspect.signature(cls).parameters if n not in cls.config_fields]


def build_neuron(cfg) -> NeuronModel:
    """The neuron model ``cfg.neuron`` names, built by its ``from_config`` from its
    ``neuron_options`` (checked first: an unknown option names the closest, a wrong type is one
    line)."""
    cls = NEURONS[cfg.neuron]
    defaults = type(cfg)()
    for f in NEURON_FIELDS:
        if f not in cls.config_fields and getattr(cfg, f) != getattr(defaults, f):
            raise ValueError(f"neuron {cfg.neuron!r} does not read {f} (it is the paper "
                             f"neuron's); set this neuron's own options with neuron_options "
                             f"(its options: {', '.join(_option_names(cls)) or 'none'})")
    if not isinstance(cfg.neuron_options, dict):
        raise ValueError(f"neuron_options must be a mapping, got {cfg.neuron_options!r}")
    cfg.neuron_options = check_options(f"neuron_options for neuron {cfg.neuron!r}",
                                       cfg.neuron_options, cls)
    try:
        return cls.from_config(cfg)
    except TypeError as e:  # an option the model's own from_config refuses
        raise ValueError(f"neuron_options for neuron {cfg.neuron!r}: {e}") from None


@CONFIG_CHECKS.register("neuron")
def check_neuron(cfg) -> None:
    """The neuron's section: ``neuron``, ``neuron_options`` (and the paper neuron's ``kappa``,
    ``spikes``, ``dt``), by building it."""
    build_neuron(cfg)
