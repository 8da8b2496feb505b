"""Gradient check: EP (mean field, float64, small beta) against BPTT of the settled dynamics."""
from __future__ import annotations

import copy
from dataclasses import replace

import torch

from .bptt import bptt_gradients
from .ep import EPConfig, ep_gradients


def _named_grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()}


def compare_ep_bptt(net, x: torch.Tensor, y: torch.Tensor, beta: float = 1e-4, T_free: int = 200,
                    T_nudge: int = 200, estimator: str = "three-phase") -> list[dict]:
    """Per-parameter cosine and norm ratio ``|g_EP| / |g_BPTT|`` on one batch.

    The network is copied, switched to mean-field ``rate`` spikes and float64; the original is
    untouched. Both gradients are of the same batch-mean cost.
    """
    net = copy.deepcopy(net).double()
    net.neuron = replace(net.neuron, spikes="rate")
    x = x.double()
    ep_gradients(net, x, y, EPConfig(beta, T_free, T_nudge, estimator))
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
