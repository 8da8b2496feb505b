"""Hopfield attention (interactions/attention.py, eq. 19-20): energy, retrieval, masking, EP."""
import pytest
import torch

from stochep.engine.dynamics import Dynamics, phase_constants
from stochep.engine.interactions.attention import HopfieldAttention, retrieve
from stochep.tools.gradcheck import compare_ep_bptt
from stochep.training.config import Config
from stochep.training.models import build_network


def _emb(vocab=30, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(vocab, d, generator=g, dtype=torch.float64)
    e[0] = 0
    return e


def _ids(batch=5, length=4, vocab=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, vocab, (batch, length), generator=g).double()
    x[0, 2:] = 0  # a padded review
    return x


def _net(spikes="rate", n=6, spec=None, **kw):
    torch.manual_seed(0)
    cfg = Config(layers=[{"attention": n, **(spec or {})}], n_perclass=3, kappa=1.0, spikes=spikes,
                 init_scale=1.0, **kw)
    return build_network(cfg, (4,), 2, _emb()).double()


HEADS = [dict(), dict(heads=3, sharpness=2.5)]  # the paper's single module, and the options


@pytest.mark.parametrize("opts", HEADS)
def test_drive_is_minus_the_gradient_of_the_energy(opts):
    inter = HopfieldAttention(4, 6, _emb(), **opts).double()
    x, r = _ids(), torch.rand(5, 6, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(inter.energy(x, r).sum(), r)
    drive = inter.bind(x).add_(torch.zeros(5, 6, dtype=torch.float64), r.detach(), 1.0)
    assert torch.allclose(drive, -g, atol=1e-10)


@pytest.mark.parametrize("opts", HEADS)
def test_contrast_is_the_energy_gradient_in_the_weights(opts):
    inter = HopfieldAttention(4, 6, _emb(), **opts).double()
    x, r = _ids(), torch.rand(5, 6, dtype=torch.float64)
    grads = torch.autograd.grad(inter.energy(x, r).mean(), [inter.weight, inter.bias])
    for got, want in zip(inter.contrast(x, r), grads):
        assert torch.allclose(got, want, atol=1e-10)


def test_large_inverse_temperature_retrieves_the_nearest_pattern():
    keys = _emb(vocab=7, d=8)[1:].unsqueeze(0)  # 6 stored patterns
    mask = torch.ones(1, 6, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)  # its own stream: independent of the tests before it
    for j in range(6):
        q = keys[0, j] + 0.05 * torch.randn(8, dtype=torch.float64, generator=gen)
        got = retrieve(q.unsqueeze(0), keys, mask, scale=1000.0)
        assert torch.allclose(got[0], keys[0, (keys[0] @ q).argmax()], atol=1e-6)


def test_padding_is_masked_out():
    inter = HopfieldAttention(6, 6, _emb()).double()
    x = _ids(length=6)
    x[:, 4:] = 0
    r = torch.rand(5, 6, dtype=torch.float64)
    a = inter.bind(x).add_(torch.zeros(5, 6, dtype=torch.float64), r, 1.0)
    inter.embedding[0] = 100.0  # if padding took part, this would change the retrieval
    b = inter.bind(x).add_(torch.zeros(5, 6, dtype=torch.float64), r, 1.0)
    assert torch.allclose(a, b)
    empty = torch.zeros(1, 6, dtype=torch.float64)  # no valid token: retrieves nothing, no NaN
    out = inter.bind(empty).add_(torch.zeros(1, 6, dtype=torch.float64), r[:1], 1.0)
    assert torch.isfinite(out).all() and torch.allclose(out[0], inter.bias)


def test_with_feedback_held_fixed_the_update_has_a_fixed_point():
    net = _net()
    with torch.no_grad():
        net.interactions[1].weight.zero_()  # no feedback from the readout
        x = _ids()
        dyn = Dynamics()
        a = dyn.relax(net, x, net.zero_states(5, torch.float64), 300).final
        b = dyn.relax(net, x, a, 1).final
    assert all(torch.allclose(u, v, atol=1e-10) for u, v in zip(a, b))


def test_mean_field_energy_never_increases():
    net = _net()
    x = _ids()
    consts = phase_constants(net, x)
    from stochep.engine.dynamics import step

    states = net.zero_states(5, torch.float64)
    e_prev = net.energy(x, states)
    for _ in range(100):
        states = step(net, consts, states)[0]
        e = net.energy(x, states)
        assert (e <= e_prev + 1e-12).all()
        e_prev = e


@pytest.mark.parametrize("estimator,spec", [("two-phase", None), ("three-phase", None),
                                            ("three-phase", {"heads": 2, "sharpness": 2.0})])
def test_ep_matches_bptt_on_a_tiny_1ha1fc(estimator, spec):
    rows = compare_ep_bptt(_net(spec=spec), _ids(), torch.tensor([0, 1, 1, 0, 1]), 1e-4, 400, 400,
                           estimator)
    assert min(r["cosine"] for r in rows) > 0.999
    assert all(abs(r["norm_ratio"] - 1) < 0.01 for r in rows)


def test_stochastic_net_trains_a_step_and_attention_spec_errors():
    from stochep import EP, Streams

    net = _net("bernoulli")
    rule = EP(0.5, 20, 8, "three-phase", streams=Streams(0))
    res = rule.gradients(net, _ids(), torch.tensor([0, 1, 1, 0, 1]))
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(((s >= 0) & (s <= 1)).all() for s in res.free)
    with pytest.raises(ValueError, match="attention layer must be the first"):
        build_network(Config(layers=[8, {"attention": 4}]), (4,), 2, _emb())
    with pytest.raises(ValueError, match="token ids"):
        net.interactions[0].keys(torch.full((1, 4), 99.0))


def test_heads_are_independent_single_head_modules():
    """With H heads the drive is the sum of H one-head modules' drives (their W_Q the row blocks
    of W_Q, the bias counted once), and the retrieval of each head is a convex combination of
    the review's tokens."""
    multi = HopfieldAttention(4, 6, _emb(), heads=3, sharpness=2.0).double()
    x, r = _ids(), torch.rand(5, 6, dtype=torch.float64)
    want = multi.bias.detach().expand(5, 6).clone()
    for h, w in enumerate(multi.weight.detach().chunk(3)):
        one = HopfieldAttention(4, 6, _emb(), sharpness=2.0).double()
        with torch.no_grad():
            one.weight.copy_(w)
            one.bias.zero_()
        want += one.bind(x).add_(torch.zeros(5, 6, dtype=torch.float64), r, 1.0)
    got = multi.bind(x).add_(torch.zeros(5, 6, dtype=torch.float64), r, 1.0)
    assert torch.allclose(got, want, atol=1e-12)
    keys, mask = multi.keys(x)
    a = retrieve(multi.queries(r, multi.weight.detach()), keys, mask, multi.scale)
    assert a.shape == (5, 3, 8)
    assert multi.weight.shape == (24, 6) and multi.scale == pytest.approx(2.0 / 8 ** 0.5)


def test_attention_options_are_checked():
    with pytest.raises(ValueError, match="takes 'attention'.*got keys"):
        build_network(Config(layers=[{"attention": 4, "keys": 2}]), (4,), 2, _emb())
    with pytest.raises(ValueError, match="sharpness must be a finite number > 0"):
        build_network(Config(layers=[{"attention": 4, "sharpness": 0}]), (4,), 2, _emb())
    net = build_network(Config(layers=[{"attention": 4, "heads": 2}]), (4,), 2, _emb())
    assert net.interactions[0].weight.shape == (16, 4)
