"""Implicit differentiation at the equilibrium (``implicit.py``, ``--algo id``): exact against
BPTT on a settled contractive network, a backward solve that solves, training, and clear errors."""
import pytest
import torch

from stochep import RULES, EPNetwork, Neuron
from stochep.engine.dynamics import Dynamics, phase_constants, step
from stochep.rules.bptt import bptt_gradients
from stochep.rules.implicit import ID, equilibrium_step, id_gradients, solve_adjoint
from stochep.training.config import Config
from stochep.training.trainer import Trainer, TrainingDiverged


def _net(widths, scale=0.3, lam=0.5, mode="rate", n_perclass=2):
    torch.manual_seed(0)
    return EPNetwork.fc(widths, n_classes=10, n_perclass=n_perclass, neuron=Neuron(2.0, mode),
                        lam=lam, init_scale=scale).double()


def _grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("widths,T", [([64, 32], 200), ([64, 32, 16], 300)],
                         ids=["1-hidden", "2-hidden"])
def test_id_gradient_matches_bptt_on_a_settled_contractive_network(batch, widths, T):
    x, y = batch
    net = _net(widths)  # small weights: the mean-field step is a contraction at the equilibrium
    id_gradients(net, x, y, ID(T, average_last=10, iters=600, tol=1e-12))
    g_id = _grads(net)
    bptt_gradients(net, x, y, T)  # through all T steps of the same (settled) dynamics
    g_bp = _grads(net)
    assert len(g_id) == 2 * (len(widths))
    for name in g_id:
        a, b = g_id[name].flatten(), g_bp[name].flatten()
        assert b.norm() > 0.1
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        assert cos > 1 - 1e-9, (name, cos)  # measured: 1 - cos < 1e-12
        assert abs((a.norm() / b.norm()).item() - 1) < 1e-5, name  # measured: < 1e-6


def test_backward_solve_solves_the_linear_system(batch):
    x, y = batch
    x, y = x[:3], y[:3]
    net = _net([64, 8], scale=0.5, n_perclass=1)
    star = Dynamics().relax(net, x, net.zero_states(3, x.dtype), 100).final
    with torch.enable_grad():
        leaves, a1 = equilibrium_step(net, x, star)
        b = list(torch.autograd.grad(net.loss(leaves[-1], net.target(y, x.dtype)).mean(),
                                     leaves, allow_unused=True))
        b = [torch.zeros_like(s) if t is None else t for s, t in zip(leaves, b)]

        def vjp(g):
            return list(torch.autograd.grad(a1, leaves, g, retain_graph=True))

        sol = solve_adjoint(vjp, b, iters=500, tol=1e-12)
        assert sol.residual <= 1e-12 and 1 < sol.iters < 500
        r = [v + bi - gi for v, bi, gi in zip(vjp(sol.g), b, sol.g)]
    rel = torch.cat([t.flatten() for t in r]).norm() / torch.cat([t.flatten() for t in b]).norm()
    assert rel < 1e-11
    # against a dense solve of (I - J^T) g = dL/da, one sample at a time (samples decouple)
    sizes, mf = [s.shape[1] for s in star], net.neuron.mean_field()
    for i in range(3):
        def f(v, i=i):
            states = [t[None] for t in torch.split(v, sizes)]
            consts = phase_constants(net, x[i:i + 1], mf)
            return torch.cat([t[0] for t in step(net, consts, states, neuron=mf)[0]])

        J = torch.autograd.functional.jacobian(f, torch.cat([s[i] for s in star]))
        want = torch.linalg.solve(torch.eye(J.shape[0], dtype=J.dtype) - J.T,
                                  torch.cat([t[i] for t in b]))
        torch.testing.assert_close(torch.cat([t[i] for t in sol.g]), want, rtol=1e-9,
                                   atol=1e-12)


def test_unconverged_solve_is_the_truncated_neumann_series():
    b = [torch.ones(2, 3, dtype=torch.float64)]
    sol = solve_adjoint(lambda g: [0.5 * g[0]], b, iters=3, tol=1e-12)
    assert sol.iters == 3
    torch.testing.assert_close(sol.g[0], b[0] * (1 + 0.5 + 0.25))  # sum_{k<3} (J^T)^k b
    assert sol.residual == pytest.approx(0.125)


def test_id_trains_the_digits_default(digits):
    assert "id" in RULES
    tr = Trainer(Config(algo="id", epochs=1), digits, progress=False)
    assert isinstance(tr.rule, ID) and tr.rule.iters == 10
    tr.fit()
    assert tr.history[-1]["test_acc"] > 0.7  # chance is 0.1; measured 0.85 after this epoch


@pytest.mark.parametrize("key,value", [("rules.id.iters", 0), ("rules.id.tol", 0.0),
                                       ("rules.id.tol", 1.5), ("rules.id.damping", 0.0),
                                       ("rules.id.damping", 1.5)])
def test_bad_id_options_are_rejected(key, value):
    cfg = Config()  # checked whatever algo is
    cfg.set(key, value)
    with pytest.raises(ValueError, match=key):
        cfg.validate()


def test_a_diverging_backward_solve_raises_one_clear_line(batch):
    x, y = batch
    with pytest.raises(TrainingDiverged, match="diverged.*lower lr"):
        solve_adjoint(lambda g: [2.0 * g[0]], [torch.ones(2, 3)], iters=50)
    with pytest.raises(TrainingDiverged, match="diverged"):
        solve_adjoint(lambda g: [g[0] * float("nan")], [torch.ones(2, 3)])
    # lam = 1 and large weights: the mean-field step is far from a contraction
    net = _net([64, 32], scale=3.0, lam=1.0)
    with pytest.raises(TrainingDiverged) as err:
        id_gradients(net, x, y, ID(5, average_last=1, iters=100))
    assert "\n" not in str(err.value)
