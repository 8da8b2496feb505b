"""Energies E (eq. 3/13) and E_stoch (eq. 5); Theorem 3.1: E[E_stoch] = E."""
import torch

from stochep import EPNetwork, Neuron, SpikeRNG


def _net(mode="bernoulli"):
    torch.manual_seed(0)
    return EPNetwork.fc([20, 16, 12], n_classes=3, n_perclass=2, neuron=Neuron(2.0, mode)).double()


def test_energy_matches_hand_computation():
    net = _net()
    x = torch.rand(3, 20, dtype=torch.float64)
    states = [torch.rand(3, 16, dtype=torch.float64) / 2, torch.rand(3, 12, dtype=torch.float64) / 2,
              torch.rand(3, 6, dtype=torch.float64) / 2]
    r = [torch.clamp(2 * s, 0, 1) for s in states]
    e = sum(0.5 * (s**2).sum(1) for s in states)
    for inter, lo, hi in zip(net.interactions, [x] + r[:-1], r):
        e = e - (hi * (lo @ inter.weight.T + inter.bias)).sum(1)
    assert torch.allclose(net.energy(x, states), e)


def test_theorem_3_1_expected_stochastic_energy_equals_energy():
    net = _net()
    x = torch.rand(1, 20, dtype=torch.float64)
    states = [torch.rand(1, *s, dtype=torch.float64) / 2 for s in net.layer_shapes]
    n = 50_000
    xs = x.expand(n, -1)
    big = [s.expand(n, *s.shape[1:]) for s in states]
    spikes = net.neuron.sample(net.rates(big), SpikeRNG(7))
    e_stoch = net.energy_stoch(xs, big, spikes)
    e = net.energy(x, states)[0]
    stderr = e_stoch.std() / n**0.5
    assert abs(e_stoch.mean() - e) < 5 * stderr
    assert e_stoch.std() > 0  # the samples really are stochastic
