"""Fewer steps per sample: the bottom-up sweep start and per-sample stopping (masked updates)."""
import pytest
import torch

from stochep import EP, EPNetwork, Neuron, ep_gradients
from stochep.engine.dynamics import Dynamics
from stochep.engine.rng import SpikeRNG
from stochep.engine.start import sweep_states
from stochep.training.config import Config, ConfigError


def _net(mode="rate", widths=(20, 16, 12), scale=0.8):
    torch.manual_seed(0)
    return EPNetwork.fc(list(widths), n_classes=3, n_perclass=2, neuron=Neuron(2.0, mode),
                        lam=0.5, init_scale=scale).double()


def test_sweep_start_equals_the_mean_field_feedforward_states():
    net = _net()
    x = torch.rand(7, 20, dtype=torch.float64)
    got = sweep_states(net, x)
    below, kappa = x, 2.0
    for inter, s in zip(net.interactions, got):
        want = (kappa * (below @ inter.weight.t() + inter.bias)).clamp(0.0, 1.0 / kappa)
        assert torch.allclose(s, want, atol=1e-12)
        below = kappa * want  # the hard sigmoid's rate of the layer just set
    assert all((s > 0).any() for s in got)
    assert torch.equal(Dynamics(start="sweep").initial(net, x)[0], got[0])
    assert all(not s.any() for s in Dynamics().initial(net, x))


def test_sweep_start_reaches_the_same_fixed_point_sooner():
    net = _net(scale=0.4)  # weak couplings: one fixed point
    x = torch.rand(7, 20, dtype=torch.float64)
    dyn = Dynamics()
    fixed = dyn.relax(net, x, net.zero_states(7, torch.float64), 400).final
    start = sweep_states(net, x)
    assert torch.allclose(dyn.relax(net, x, start, 400).final[-1], fixed[-1], atol=1e-9)

    def gap(init, steps):
        out = dyn.relax(net, x, init, steps).final
        return max((a - b).abs().max().item() for a, b in zip(out, fixed))
    for steps in (2, 5, 10):
        assert gap(start, steps) < gap(net.zero_states(7, torch.float64), steps)


@pytest.mark.parametrize("beta, average_last", [(0.0, 1), (0.0, 4), (0.4, 4)])
def test_per_sample_stop_with_zero_tol_equals_the_full_loop(beta, average_last):
    net = _net("bernoulli")
    x = torch.rand(9, 20, dtype=torch.float64)
    target = net.target(torch.arange(9) % 3, x.dtype)
    runs = [Dynamics(stop=stop).relax(net, x, net.zero_states(9, torch.float64), 12,
                                      SpikeRNG(4), beta, target, average_last)
            for stop in ("batch", "sample")]
    for a, b in zip(runs[0].final + runs[0].average, runs[1].final + runs[1].average):
        assert torch.equal(a, b)
    assert runs[1].sample_steps.tolist() == [12] * 9


def test_per_sample_stop_leaves_settled_samples_untouched():
    """Mean-field rows do not interact, so each row of a per-sample-stopped batch is that row
    relaxed alone until it settled (same tolerance), and later steps did not move it."""
    net = _net()
    torch.manual_seed(1)
    x = torch.rand(8, 20, dtype=torch.float64) * torch.linspace(0.05, 1.0, 8)[:, None]
    dyn = Dynamics(tol=1e-4, check_every=2, stop="sample")
    got = dyn.relax(net, x, net.zero_states(8, torch.float64), 200, average_last=3)
    steps = got.sample_steps
    assert steps.min() < steps.max() < 200  # the samples settled at different steps
    for b in range(8):
        alone = Dynamics(tol=1e-4, check_every=2).relax(
            net, x[b:b + 1], net.zero_states(1, torch.float64), 200, average_last=3)
        assert alone.steps == steps[b]
        for s, a in zip(got.final, alone.final):
            assert torch.allclose(s[b], a[0], atol=1e-12)
        # stopped before the averaging window: its average is its final state
        for s, a in zip(got.average, got.final):
            assert torch.equal(s[b], a[b])


def test_ep_and_evaluation_start_from_the_dynamics_start():
    net = _net()
    x = torch.rand(6, 20, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    seen = []

    class Spy(Dynamics):
        def relax(self, net, x, init, *a, **k):
            seen.append([s.clone() for s in init])
            return super().relax(net, x, init, *a, **k)
    ep_gradients(net, x, y, EP(0.3, 10, 4, "three-phase"), dynamics=Spy(start="sweep"))
    first = seen[0]
    for s, w in zip(first, sweep_states(net, x)):
        assert torch.equal(s, w)
    net.inference.dynamics, net.inference.steps = Spy(start="sweep"), 5
    seen.clear()
    list(net.score_batches(x))
    assert torch.equal(seen[0][0], first[0])


def test_start_and_stop_are_config_options():
    cfg = Config(start="sweep", stop="sample", tol=0.1)
    dyn = Dynamics.from_config(cfg)
    assert (dyn.start, dyn.stop, dyn.tol) == ("sweep", "sample", 0.1)
    for bad in ({"start": "up"}, {"stop": "each"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Config(**bad)


def test_tiny_run_with_sweep_start_and_per_sample_stop_learns():
    from helpers import TINY

    from stochep.training.trainer import Trainer
    cfg = Config.from_dict({**TINY, "dataset": "digits", "start": "sweep", "stop": "sample",
                            "tol": 0.3, "epochs": 2, "seed": 1})
    tr = Trainer(cfg, cfg.load_data(), None, progress=False)
    tr.fit()
    assert tr.history[-1]["val_acc"] > 0.25  # chance: 0.1
