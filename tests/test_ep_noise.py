"""EP variance reductions for stochastic spikes: averaged contrasts and shared nudge noise."""
import pytest
import torch

from stochep import EP, EPNetwork, Neuron, ep_gradients
from stochep.engine.dynamics import Dynamics
from stochep.engine.rng import SpikeRNG
from stochep.training.config import Config


def _net(mode):
    torch.manual_seed(0)
    return EPNetwork.fc([20, 16, 16], n_classes=3, n_perclass=4, neuron=Neuron(2.0, mode),
                        lam=0.3, init_scale=0.5).double()


def _grad(net):
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 20, dtype=torch.float64, generator=g), torch.randint(0, 3, (16,),
                                                                               generator=g)


def test_relax_keeps_the_mean_of_the_last_steps():
    net = _net("bernoulli")
    x, _ = _batch()
    dyn, rng = Dynamics(), SpikeRNG(3)
    start = net.zero_states(16, torch.float64)
    got = dyn.relax(net, x, start, 12, rng, average_last=4).average
    rng, seen = SpikeRNG(3), []
    states = Dynamics().relax(net, x, start, 8, rng).final
    for _ in range(4):
        states = Dynamics().relax(net, x, states, 1, rng).final
        seen.append(states)
    for i, a in enumerate(got):
        assert torch.allclose(a, sum(s[i] for s in seen) / 4, atol=1e-12)


@pytest.mark.parametrize("estimator", ["two-phase", "three-phase"])
def test_averaged_contrast_is_unchanged_at_a_settled_mean_field_equilibrium(estimator):
    net = _net("rate")
    x, y = _batch()
    ep_gradients(net, x, y, EP(0.05, 1500, 1000, estimator))
    final = _grad(net)
    ep_gradients(net, x, y, EP(0.05, 1500, 1000, estimator, average_last=20))
    assert torch.allclose(_grad(net), final, atol=1e-7, rtol=1e-5)


def test_variance_reductions_lower_the_spread_of_stochastic_estimates():
    net = _net("bernoulli")
    x, y = _batch()

    def spread(**kw):
        gs = []
        for seed in range(16):
            ep_gradients(net, x, y, EP(0.1, 60, 20, "three-phase", **kw), SpikeRNG(seed))
            gs.append(_grad(net))
        return torch.stack(gs).var(0).sum().item()

    plain = spread()
    reduced = spread(average_last=10, shared_noise=True)
    assert reduced < 0.75 * plain


def test_shared_noise_estimates_the_same_gradient():
    """The rewound stream changes the noise, not the expectation: both means agree."""
    net = _net("bernoulli")
    x, y = _batch()

    def mean(shared):
        gs = []
        for seed in range(16):
            ep_gradients(net, x, y, EP(0.4, 60, 20, "three-phase", shared_noise=shared),
                         SpikeRNG(100 + seed))
            gs.append(_grad(net))
        return torch.stack(gs).mean(0)

    a, b = mean(False), mean(True)
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.95
    assert 0.8 < (b.norm() / a.norm()).item() < 1.25


@pytest.mark.parametrize("estimator", ["two-phase", "random-sign"])
def test_one_nudge_shared_noise_branches_off_the_free_phase(estimator):
    """The nudged phase starts T_nudge steps before the free phase's end and replays its spikes:
    at a settled mean-field equilibrium it is the plain estimate; with spikes it is the plain
    estimate's expectation with less spread, for no extra steps."""
    net = _net("rate")
    x, y = _batch()
    sign = torch.Generator

    def grad(net, rng=None, beta=0.1, **kw):
        ep_gradients(net, x, y, EP(beta, kw.pop("T_free", 60), 20, estimator, **kw), rng,
                     sign().manual_seed(0))
        return _grad(net)
    assert torch.allclose(grad(net, T_free=1500, shared_noise=True), grad(net, T_free=1500),
                          atol=1e-7, rtol=1e-5)
    steps = []

    class Count(Dynamics):
        def relax(self, net, x, init, n, *a, **k):
            steps.append(n)
            return super().relax(net, x, init, n, *a, **k)
    ep_gradients(net, x, y, EP(0.1, 60, 20, estimator, shared_noise=True), None,
                 sign().manual_seed(0), Count())
    assert steps == [40, 20, 20]
    mean_field = grad(net, beta=0.4)
    spiking = _net("bernoulli")
    runs = {shared: torch.stack([grad(spiking, SpikeRNG(s), beta=0.4, average_last=10,
                                      shared_noise=shared) for s in range(16)])
            for shared in (False, True)}
    assert runs[True].var(0).sum() < 0.75 * runs[False].var(0).sum()
    # the same direction as the mean-field estimate (0.90 two-phase, 0.61 for the -0.4 nudge)
    assert torch.nn.functional.cosine_similarity(runs[True].mean(0), mean_field, dim=0) > 0.5


@pytest.mark.parametrize("bad, match", [
    ({"average_last": 0}, "average_last"),
    ({"shared_noise": True, "estimator": "two-phase", "T_free": 20},
     "T_free must be longer than T_nudge"),
    ({"shared_noise": "yes", "estimator": "three-phase"}, "shared_noise must be (true or false|of type bool)"),
])
def test_bad_noise_options_fail_clearly(bad, match):
    base = {"beta": 0.1, "T_free": 40, "T_nudge": 20, "estimator": "three-phase"}
    with pytest.raises(ValueError, match=match):
        EP(**{**base, **bad})
    with pytest.raises(ValueError, match=match):
        Config(**{**base, **bad}).validate()
