"""Shared assertion for the dynamics tests: even/odd steps never raise the mean-field energy."""
import torch

from stochep.engine.dynamics import phase_constants, step_async


def relax_async_checking_energy(net, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Run ``steps`` even/odd steps from zero states, asserting E never increases; final states."""
    consts = phase_constants(net, x)
    states = net.zero_states(x.shape[0], x.dtype)
    e_prev = net.energy(x, states)
    for _ in range(steps):
        states = step_async(net, consts, states)[0]
        e = net.energy(x, states)
        assert (e <= e_prev + 1e-12).all()
        e_prev = e
    return states
