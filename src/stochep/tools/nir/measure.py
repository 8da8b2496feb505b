"""Class scores of a NIR graph beside stochep's own: what docs/deploy.md reports.

The spiking graph's class scores are the output spikes counted over the last ``spike_window``
steps, averaged over each class's ``n_perclass`` output neurons (the readout of section 3.4 with
spike counts for rates); stochep's are :attr:`EPNetwork.inference`'s free phase, in mean field
(``spikes = rate``, Theorem 3.1) or with its stochastic spikes.
"""
from __future__ import annotations

import copy

import torch

from .execute import run_reference, run_snntorch, snntorch_module
from .graph import stochep_info

RUNNERS = ("snntorch", "reference", "reference-subtract")


def spike_scores(outputs: torch.Tensor, info: dict, window: int | None = None) -> torch.Tensor:
    """``[B, n_classes]``: output values ``[steps, B, n_out]`` averaged over the last
    ``window`` steps (default the graph's ``spike_window``) and over each class group."""
    window = window or info["spike_window"]
    rate = outputs[-window:].float().mean(0)
    return rate.view(rate.shape[0], info["n_classes"], info["n_perclass"]).mean(2)


@torch.no_grad()
def graph_scores(graph, x: torch.Tensor, runner: str = "snntorch", steps: int | None = None,
                 window: int | None = None, batch_size: int = 1000) -> torch.Tensor:
    """Class scores of ``graph`` for inputs ``x`` run by ``runner`` (:data:`RUNNERS`) for
    ``steps`` (default the graph's ``T_free``), in batches."""
    info = stochep_info(graph)
    steps = steps or info["T_free"]
    module = snntorch_module(graph) if runner == "snntorch" else None
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        if runner == "snntorch":
            values = run_snntorch(graph, xb, steps, module)
        else:
            reset = "subtract" if runner == "reference-subtract" else "nir"
            values = run_reference(graph, xb, steps, reset=reset)
        out.append(spike_scores(values, info, window))
    return torch.cat(out)


@torch.no_grad()
def stochep_scores(net, x: torch.Tensor, mean_field: bool = True) -> torch.Tensor:
    """``net(x)``'s class scores, with the neuron's spikes replaced by their rates when
    ``mean_field`` (the deterministic free phase the graph carries)."""
    if not mean_field:
        return net(x)
    mf = copy.copy(net)  # a shallow copy shares the weights; only its neuron differs
    mf.neuron = net.neuron.mean_field()
    return mf(x)
