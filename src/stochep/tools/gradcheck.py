"""Gradient check: EP (mean field, float64, small beta) against BPTT of the settled dynamics.

``stochep gradcheck`` runs :func:`compare_ep_bptt` on :func:`digits_network` (the embedded
data) or on a preset's network, narrowed (:func:`preset_network`).
"""
from __future__ import annotations

import copy

import torch

from stochep.rules.bptt import bptt_gradients
from stochep.rules.ep import EP, ep_gradients


def _named_grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()}


def compare_ep_bptt(net, x: torch.Tensor, y: torch.Tensor, beta: float = 1e-4, T_free: int = 200,
                    T_nudge: int = 200, estimator: str = "three-phase", rule=None) -> list[dict]:
    """Per-parameter cosine and norm ratio ``|g_EP| / |g_BPTT|`` on one batch.

    The network is copied, switched to mean-field ``rate`` spikes and float64; the original is
    untouched. Both gradients are of the same batch-mean cost. ``rule``: another learning rule
    (``LearningRule``) to check against BPTT instead of EP with ``beta`` and ``estimator``.
    """
    net = copy.deepcopy(net).double()
    net.neuron = net.neuron.mean_field()
    x = x.double()
    if rule is None:
        ep_gradients(net, x, y, EP(beta, T_free, T_nudge, estimator))
    else:
        rule.gradients(net, x, y)
    g_ep = _named_grads(net)
    bptt_gradients(net, x, y, T_free)
    g_bp = _named_grads(net)
    rows = []
    for name in g_ep:
        a, b = g_ep[name].flatten(), g_bp[name].flatten()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        ratio = (a.norm() / b.norm().clamp_min(1e-300)).item()
        rows.append({"param": name, "cosine": cos, "norm_ratio": ratio,
                     "bptt_norm": b.norm().item()})
    return rows


def digits_network(widths, n_perclass: int = 2, kappa: float = 2.0, lam: float = 0.5,
                   init_scale: float = 0.5, seed: int = 0):
    """A mean-field dense network ``widths`` on the embedded digits, and the data."""
    from stochep.data import load_dataset
    from stochep.engine.network import EPNetwork
    from stochep.engine.neurons import Neuron

    data = load_dataset("digits")
    if widths[0] != data.input_shape[0]:
        raise ValueError(f"--widths must start with the input size {data.input_shape[0]}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = EPNetwork.fc(widths, data.n_classes, n_perclass, Neuron(kappa, "rate"), lam,
                           init_scale)
    return net, data


def preset_network(preset: str, narrow: int = 1, n_perclass: int = 2, seed: int = 0,
                   data_dir: str | None = None, overrides=()):
    """A preset's network (or with ``preset=None`` the digits default's) with every width and
    channel count divided by ``narrow``, its ``--set`` style ``overrides`` applied (any
    registered neuron, layer or cost), and its dataset."""
    from stochep.training.config import Config
    from stochep.training.models import build_network
    from stochep.training.presets import load_preset

    cfg = load_preset(preset) if preset else Config()
    cfg.apply_overrides(list(overrides))
    cfg.layers = [max(1, spec // narrow) if isinstance(spec, int)
                  else {k: max(1, v // narrow) if k in ("conv", "attention") else v
                        for k, v in spec.items()}
                  for spec in cfg.layers]
    if "n_perclass" not in " ".join(overrides):
        cfg.n_perclass = n_perclass
    cfg.seed = seed
    cfg.validate()
    data = cfg.load_data(data_dir)
    torch.manual_seed(seed)
    return build_network(cfg, data.input_shape, data.n_classes, data.embedding), data, cfg
