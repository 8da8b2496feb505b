"""Dynamics (eq. 7, 8): a projected gradient step on F = E + beta L; F never increases."""
import pytest
import torch

from stochep import EPNetwork, Neuron
from stochep.engine.dynamics import phase_constants, step


def _net(widths=(20, 16, 12), scale=0.5, kappa=2.0, lam=0.5, cost="state"):
    torch.manual_seed(0)
    return EPNetwork.fc(list(widths), n_classes=3, n_perclass=2, neuron=Neuron(kappa, "rate"),
                        lam=lam, init_scale=scale, cost=cost).double()


def _total_energy(net, x, states, beta, target):
    return net.energy(x, states) + beta * net.loss(states[-1], target)


@pytest.mark.parametrize("cost", ["state", "rate"])
def test_step_is_projected_gradient_step_of_energy(cost):
    """Drive and feedback equal -dE/dxi from autograd (rho' = kappa on [0, 1/kappa])."""
    net = _net(cost=cost)
    x = torch.rand(4, 20, dtype=torch.float64)
    states = [(torch.rand(4, *s, dtype=torch.float64) * 0.45 + 0.01) for s in net.layer_shapes]
    target = net.target(torch.tensor([0, 1, 2, 1]), torch.float64)
    for beta in (0.0, 0.7):
        leaves = [s.clone().requires_grad_(True) for s in states]
        f = _total_energy(net, x, leaves, beta, target).sum()
        grads = torch.autograd.grad(f, leaves)
        expected = [(s - net.lam * g).clamp(0, 1 / 2.0) for s, g in zip(states, grads)]
        got = step(net, phase_constants(net, x), states, None, beta, target)[0]
        for a, b in zip(got, expected):
            assert torch.allclose(a, b, atol=1e-12)


def _lipschitz(net):
    """Largest |eigenvalue| of the Hessian of E in the box: I - kappa^2 * (block coupling)."""
    sizes = [s[0] for s in net.layer_shapes]
    n = sum(sizes)
    a = torch.zeros(n, n, dtype=torch.float64)
    offs = [0]
    for s in sizes:
        offs.append(offs[-1] + s)
    for k, inter in enumerate(net.interactions[1:], start=1):
        lo, hi = slice(offs[k - 1], offs[k]), slice(offs[k], offs[k + 1])
        a[hi, lo] = inter.weight.detach()
        a[lo, hi] = inter.weight.detach().T
    h = torch.eye(n, dtype=torch.float64) - net.neuron.kappa**2 * a
    return torch.linalg.eigvalsh(h).abs().max().item()


@pytest.mark.parametrize("cost", ["state", "rate"])
def test_energy_never_increases_in_deterministic_mode(cost):
    net = _net(lam=0.3, cost=cost)
    # Precondition of the guarantee (projected gradient descent with step lam < 2/L, the
    # nudge adds |beta| * curvature <= 0.5 * kappa^2 to L on the output block).
    L = _lipschitz(net) + 0.5 * net.neuron.kappa**2
    assert net.lam < 2 / L
    torch.manual_seed(1)
    x = torch.rand(8, 20, dtype=torch.float64)
    target = net.target(torch.randint(0, 3, (8,)), torch.float64)
    states = net.zero_states(8, torch.float64)
    xd = phase_constants(net, x)
    for beta, steps in ((0.0, 300), (0.5, 300), (-0.5, 1500)):
        f_prev = _total_energy(net, x, states, beta, target)
        for _ in range(steps):
            states = step(net, xd, states, None, beta, target)[0]
            f = _total_energy(net, x, states, beta, target)
            assert (f <= f_prev + 1e-12).all()
            f_prev = f
    # it actually moved and settled
    assert states[0].abs().sum() > 0
    nxt = step(net, xd, states, None, -0.5, target)[0]
    assert max((a - b).abs().max().item() for a, b in zip(nxt, states)) < 1e-6


def test_states_stay_in_box_and_input_drive_is_reused():
    net = _net(scale=3.0)  # large weights: saturating, still confined to [0, 1/kappa]
    x = torch.rand(5, 20, dtype=torch.float64)
    states = net.zero_states(5, torch.float64)
    xd = phase_constants(net, x)
    for _ in range(20):
        states = step(net, xd, states)[0]
    for s in states:
        assert s.min() >= 0 and s.max() <= 0.5
    assert any((s > 0).any() for s in states)  # neurons leave zero (GUIDE 1.1)


def test_fast_engine_equals_autograd_reference_in_mean_field_mode():
    from reference import reference_ep_gradients

    from stochep.rules.ep import EP, ep_gradients

    net = _net()
    x = torch.rand(6, 20, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = EP(0.3, 40, 20, "three-phase")
    reference_ep_gradients(net, x, y, cfg)
    ref = [p.grad.clone() for p in net.parameters()]
    ep_gradients(net, x, y, cfg)
    for p, g in zip(net.parameters(), ref):
        assert torch.allclose(p.grad, g, atol=1e-10)


def test_float64_phase_averages_are_exact():
    from stochep import Dynamics, EPNetwork, Neuron

    net = EPNetwork.fc([6, 5], n_classes=2, n_perclass=2, neuron=Neuron(2.0, "rate")).double()
    x = torch.rand(3, 6, dtype=torch.float64)
    states, seen = net.zero_states(3, torch.float64), []
    for _ in range(8):
        states = Dynamics().relax(net, x, states, 1).final
        seen.append(states)
    avg = Dynamics().relax(net, x, net.zero_states(3, torch.float64), 8, average_last=4).average
    for k in range(2):
        want = sum(s[k] for s in seen[4:]) / 4
        assert avg[k].dtype == torch.float64 and torch.equal(avg[k], want)
