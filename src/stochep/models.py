"""Build an :class:`EPNetwork` from a :class:`Config` (the ``layers`` list)."""
from __future__ import annotations

import torch

from .config import Config
from .interactions import Dense
from .network import EPNetwork
from .neurons import Neuron


def build_network(cfg: Config, input_shape: tuple[int, ...], n_classes: int) -> EPNetwork:
    """``layers`` holds one entry per hidden layer: an int is a dense layer of that width.

    The output layer (``n_classes * n_perclass`` neurons) is appended as a dense readout.
    Weights are drawn from a generator seeded by ``cfg.seed``; global RNG state is untouched.
    """
    neuron = Neuron(cfg.kappa, cfg.spikes, cfg.dt)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        inters, shape = [], tuple(input_shape)
        for i, spec in enumerate(cfg.layers):
            if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
                raise ValueError(f"layers[{i}] must be a positive int (dense width), got {spec!r}")
            inters.append(Dense(shape, spec, init_scale=cfg.init_scale))
            shape = inters[-1].out_shape
        inters.append(Dense(shape, n_classes * cfg.n_perclass, init_scale=cfg.init_scale))
    return EPNetwork(inters, neuron, cfg.lam, n_classes, cfg.n_perclass)
