"""The BPTT baseline trains the same network objects (issue: EP vs BPTT on one argument), and
each of its options (bptt.py) does what it claims."""
import pytest
import torch

from stochep.engine.rng import SpikeRNG
from stochep.rules.bptt import bptt_gradients
from stochep.training.config import Config
from stochep.training.models import build_network
from stochep.training.trainer import Trainer


def test_bptt_on_the_digits_default_beats_chance_widely(digits):
    cfg = Config(algo="bptt", epochs=1)
    tr = Trainer(cfg, digits, progress=False)
    assert tr.rule.clip == 1.0 and tr.cfg.lr == 0.05  # BPTT's tuned section applies
    tr.fit()
    assert tr.history[-1]["test_acc"] > 0.5  # chance is 0.1; 3 epochs: 95% (README)


def test_bptt_section_overrides_apply(digits):
    cfg = Config(algo="bptt", rules={"bptt": {"lr": 0.002, "optimizer": "adamw", "spikes": "rate"}})
    tr = Trainer(cfg, digits, progress=False)
    assert (tr.cfg.lr, tr.cfg.optimizer, tr.rule.spikes) == (0.002, "adamw", "rate")
    assert tr.rule.clip == 0.0  # a section replaces the tuned one as a whole
    ep = Config(rules={"bptt": {"lr": 0.002}})
    assert Trainer(ep, digits, progress=False).cfg.lr == Config().lr  # EP runs ignore it


def _net(widths=(64, 32), seed=0, dtype=torch.float64):
    cfg = Config(layers=list(widths), init_scale=0.5, seed=seed)
    return build_network(cfg, (64,), 10).to(dtype)


def _grads(net, x, y, T=12, seed=0, **kw):
    bptt_gradients(net, x, y, T, SpikeRNG(seed), **kw)
    return [p.grad.clone() for p in net.parameters()]


def test_bptt_gradient_flows_through_spikes_straight_through(digits):
    net = _net(dtype=torch.float32)
    for p, g in zip(net.parameters(), _grads(net, digits.x_train[:16], digits.y_train[:16])):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_mean_field_option_runs_without_spikes(batch):
    x, y = batch
    net = _net()
    assert net.neuron.stochastic
    a = _grads(net, x, y, seed=1, spikes="rate")
    b = _grads(net, x, y, seed=2, spikes="rate")
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # no spike draws at all
    assert net.neuron.spikes == "bernoulli"  # the network's neurons are restored
    c = _grads(net, x, y, seed=1)
    d = _grads(net, x, y, seed=2)
    assert not all(torch.equal(u, v) for u, v in zip(c, d))  # "same": spikes, seed-dependent


def test_loss_last_averages_the_cost_over_the_last_steps(batch):
    x, y = batch
    net = _net()
    k, T = 4, 10
    got = _grads(net, x, y, T, spikes="rate", loss_last=k)
    per_step = [_grads(net, x, y, t, spikes="rate") for t in range(T - k + 1, T + 1)]
    want = [sum(gs) / k for gs in zip(*per_step)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    one = _grads(net, x, y, T, spikes="rate")
    assert not all(torch.allclose(g, o) for g, o in zip(got, one))


def test_truncate_backpropagates_through_the_last_steps_only(batch):
    x, y = batch
    net = _net()
    full = _grads(net, x, y, 10, spikes="rate")
    for g, f in zip(_grads(net, x, y, 10, spikes="rate", truncate=10), full):
        assert torch.equal(g, f)
    # one step back from the output: the first hidden layer's weights cannot reach the cost
    g1 = dict(zip([n for n, _ in net.named_parameters()],
                  _grads(net, x, y, 10, spikes="rate", truncate=1)))
    assert g1["interactions.0.weight"].abs().sum() == 0
    assert g1["interactions.2.weight"].abs().sum() > 0
    g3 = _grads(net, x, y, 10, spikes="rate", truncate=3)
    assert not all(torch.allclose(g, f) for g, f in zip(g3, full))


def test_clip_bounds_the_global_gradient_norm_and_keeps_its_direction(batch):
    x, y = batch
    net = _net()
    raw = torch.cat([g.flatten() for g in _grads(net, x, y, spikes="rate")])
    clip = 0.1 * raw.norm().item()
    got = torch.cat([g.flatten() for g in _grads(net, x, y, spikes="rate", clip=clip)])
    assert got.norm().item() == pytest.approx(clip, rel=1e-5)
    torch.testing.assert_close(got / got.norm(), raw / raw.norm())


@pytest.mark.parametrize("key,value", [("spikes", "poisson"), ("loss_last", 0),
                                       ("loss_last", 31), ("truncate", -1), ("clip", -1.0)])
def test_bad_bptt_options_are_rejected(key, value):
    cfg = Config()
    cfg.set(f"rules.bptt.{key}", value)
    with pytest.raises(ValueError, match=f"rules.bptt.{key}"):
        cfg.validate()
