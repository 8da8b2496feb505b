"""Where a free phase starts: zero states (the paper) or a bottom-up mean-field sweep.

The sweep sets each layer from the layer below, once, bottom to top, as the mean-field fixed
point of eq. 7 with only the bottom-up drive (the top-down term left out)::

    xi_1 = P[ kappa * up_0(x) ],    xi_i = P[ kappa * up_{i-1}(rho(xi_{i-1})) ]   (i > 1)

i.e. the feedforward pass of the network's own weights with the hard sigmoid (the idea behind
feedforward-tied energy-based models, Nest & Ernoult 2024). The relaxation that follows only has
to add the feedback, so a shorter free phase reaches the same equilibrium as one from zeros. The
fixed point of eq. 7 is unchanged: only the path to it changes.
"""
from __future__ import annotations

import torch

STARTS = ("zeros", "sweep")


@torch.no_grad()
def sweep_states(net, x: torch.Tensor, neuron=None) -> list[torch.Tensor]:
    """The mean-field feedforward states of ``net`` on input ``x`` (module docstring).

    ``neuron`` replaces the network's neuron model (as in ``dynamics``); a network's faulty
    neurons pass on their fixed rates, and the first step puts the states on a quantized
    network's state grid. A neuron whose
    ``rho'`` varies inside its box (``state_gain``) or a first interaction that binds the input
    to the layer above (``binds_input``) has no closed-form bottom-up fixed point: refused in
    one line.
    """
    neuron = neuron or net.neuron
    if neuron.state_gain:
        raise ValueError(f"start=sweep needs a neuron with a constant gain; {neuron.name!r} "
                         "has a state-dependent one")
    inters = net.interactions
    if inters[0].binds_input:
        raise ValueError(f"start=sweep cannot start {type(inters[0]).__name__}, whose drive "
                         "depends on the layer above")
    dtype = x.dtype
    faults = getattr(net, "faults", None)  # dead and stuck neurons send 0 and 1 (faults.py)
    states = []
    below = x
    for i, inter in enumerate(inters):
        ctx = None if i == 0 else inter.context(below)
        drive = inter.drive_up(below, ctx)
        xi = neuron.project_((drive * neuron.gain).to(dtype))
        states.append(xi)
        below = neuron.rate(xi) if faults is None else faults.rate(i, neuron.rate(xi))
    return states


def start_states(start: str, net, x: torch.Tensor, neuron=None) -> list[torch.Tensor]:
    """The free phase's initial states for ``start`` (``"zeros"`` or ``"sweep"``)."""
    if start == "sweep":
        return sweep_states(net, x, neuron)
    return net.zero_states(x.shape[0], x.dtype)
