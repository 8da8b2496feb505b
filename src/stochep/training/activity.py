"""Per-layer activity of a network's states: the trainer's monitor and its warnings.

- :func:`layer_activity`: firing rate and the fraction of neurons pinned at each bound of the
  state box ``[0, 1/kappa]``, per layer, for a list of states.
- :func:`activity_warnings`: one-line warnings for silent (< 1 %) or saturated (> 90 % pinned
  at the top) layers.
"""
from __future__ import annotations

import torch

SILENT_RATE = 0.01
SATURATED_FRACTION = 0.9


ACTIVITY_KEYS = ("rate", "at_low", "at_high")


def activity_tensor(net, states: list[torch.Tensor]) -> torch.Tensor:
    """``[layers, 3]`` on the states' device: per layer the mean firing rate and the fractions
    at the lower and at the upper bound of the box (no host sync: :func:`as_rows` reads it)."""
    neuron = net.neuron
    rows = []
    for xi in states:
        xi = xi.detach().float()
        rate = neuron.rate(xi)
        # at the top: the box's upper bound, or a rate that has saturated below it (box=unit)
        rows.append(torch.stack([rate.mean(), (xi <= neuron.low).float().mean(),
                                 ((xi >= neuron.high) | (rate >= 1)).float().mean()]))
    return torch.stack(rows)


def as_rows(values: list[list[float]]) -> list[dict]:
    """:func:`activity_tensor`'s rows (as lists) as one dict per layer."""
    return [dict(zip(ACTIVITY_KEYS, row)) for row in values]


def layer_activity(net, states: list[torch.Tensor]) -> list[dict]:
    """Per layer: mean firing rate, fraction at the lower and at the upper bound of the box."""
    return as_rows(activity_tensor(net, states).tolist())


def activity_warnings(activity: list[dict]) -> list[str]:
    """One line per silent or saturated layer (layers numbered from 1, the output last)."""
    msgs = []
    for i, a in enumerate(activity, 1):
        if a["rate"] < SILENT_RATE:
            msgs.append(f"layer {i} is silent (firing rate {a['rate']:.4f} < {SILENT_RATE})")
        elif a["at_high"] > SATURATED_FRACTION:
            msgs.append(f"layer {i} is saturated ({a['at_high']:.0%} of neurons at the top)")
    return msgs
