"""ConvPool (eq. 13): drives and contrast equal autograd of its energy term; conv networks
settle, match BPTT (EP gradient check) and train; ``build_network`` reads conv specs."""
import math

import pytest
import torch
from dynamics_checks import relax_async_checking_energy
from torch.nn import functional as F

from stochep import EPNetwork, Neuron
from stochep.engine.dynamics import Dynamics, phase_constants, step
from stochep.engine.interactions import ConvPool, Dense
from stochep.engine.rng import SpikeRNG
from stochep.rules.ep import EP, ep_gradients
from stochep.tools.gradcheck import compare_ep_bptt
from stochep.training.config import Config
from stochep.training.models import build_network, image_shape

# (in_shape, out_channels, kernel, stride, padding, pool, pool_stride)
CONFIGS = [
    ((2, 11, 11), 3, 3, 2, 1, 2, None),  # stride 2, padding, pooling remainder (6x6 -> 3x3)
    ((1, 28, 28), 4, 5, 1, 1, 3, 3),  # MNIST 2C first layer: 28 -> 26 -> 8 (remainder 2)
    ((3, 9, 7), 5, 3, 1, 0, 1, None),  # no pooling, non-square input
    ((2, 10, 9), 3, 4, 3, 2, 2, 1),  # odd sizes, stride 3, overlapping pooling windows
    ((2, 9, 8), 2, (3, 2), (2, 1), (1, 0), (2, 3), None),  # rectangular everything
    ((2, 7, 6), 3, (3, 2), 1, (2, 1), 2, None),  # stride 1, padding k - 1 (flipped-kernel path)
    ((1, 5, 5), 2, 2, 1, 2, 1, None),  # stride 1, padding > k - 1 (transposed-conv path)
]


def _reference_energy(m, r_lo, r_hi, w, b):
    """``-sum(r_hi * (maxpool(conv(r_lo)) + b))`` written from scratch with autograd ops."""
    y = F.conv2d(r_lo, w, None, m.stride, m.padding)
    y = F.max_pool2d(y, m.pool, m.pool_stride) + b.view(1, -1, 1, 1)
    return -(r_hi * y).sum()


@pytest.mark.parametrize("cfg", CONFIGS)
def test_drives_and_contrast_equal_autograd_of_energy(cfg):
    in_shape, c_out, k, s, p, pool, ps = cfg
    torch.manual_seed(0)
    m = ConvPool(in_shape, c_out, k, s, p, pool, ps).double()
    B = 3
    r_lo = torch.rand(B, *in_shape, dtype=torch.float64, requires_grad=True)
    r_hi = torch.rand(B, *m.out_shape, dtype=torch.float64, requires_grad=True)
    e = _reference_energy(m, r_lo, r_hi, m.weight, m.bias)
    g_lo, g_hi, g_w, g_b = torch.autograd.grad(e, [r_lo, r_hi, m.weight, m.bias])
    with torch.no_grad():
        ctx = m.context(r_lo)
        assert torch.allclose(m.drive_up(r_lo, ctx), -g_hi, atol=1e-12)
        assert torch.allclose(m.drive_up(r_lo), -g_hi, atol=1e-12)  # ctx from the input itself
        down = m.drive_down(r_hi, ctx)
        assert down.shape == r_lo.shape
        assert torch.allclose(down, -g_lo, atol=1e-12)
        gw, gb = m.contrast(r_lo, r_hi)
        assert torch.allclose(gw, g_w / B, atol=1e-12)
        assert torch.allclose(gb, g_b / B, atol=1e-12)
        assert torch.allclose(m.energy(r_lo, r_hi).sum(), e, atol=1e-12)
    # flattened inputs and outputs are accepted too
    assert torch.allclose(m.drive_down(r_hi.detach().flatten(1), ctx), down)


@pytest.mark.parametrize("make", [lambda: ConvPool((1, 28, 28), 4, 5, 1, 1, 3, 3),
                                  lambda: ConvPool((2, 10, 9), 3, 4, 3, 2, 2, 1),
                                  lambda: Dense((3, 4), 5)])
def test_contrast_difference_over_one_input_is_one_contrast(make):
    """The input layer is the same in both phases: one contrast of the difference (bilinear)
    equals the difference of the two contrasts; other lower rates take the general path."""
    torch.manual_seed(1)
    m = make().double()
    lo, lo2 = (torch.rand(4, *m.in_shape, dtype=torch.float64) for _ in range(2))
    a, b = (torch.rand(4, *m.out_shape, dtype=torch.float64) for _ in range(2))
    for lo_b, calls in ((lo, 1), (lo2, 2)):
        want = [x - y for x, y in zip(m.contrast(lo, a), m.contrast(lo_b, b))]
        seen = []
        plain = m.contrast
        m.contrast = lambda r_lo, r_hi: seen.append(r_lo) or plain(r_lo, r_hi)
        got = m.contrast_difference(lo, a, lo_b, b)
        del m.contrast
        assert len(seen) == calls  # the shared input costs one contrast, not two
        assert len(got) == len(want)
        assert all(torch.allclose(g, w, atol=1e-12) for g, w in zip(got, want))


def test_one_conv_layer_under_a_dense_readout_steps_from_the_input_drive():
    """The input's drive is computed once per phase and seeds the state: it must come back in
    the states' NCHW layout (a channels-last one broke the dense feedback above it)."""
    torch.manual_seed(0)
    net = EPNetwork([ConvPool((2, 12, 12), 3, 3, 1, 1, 2), Dense((3, 6, 6), 10)],
                    Neuron(2.0, "bernoulli"), 0.5, n_classes=5, n_perclass=2)
    x = torch.rand(5, 2, 12, 12)  # two channels: the convolution runs channels-last
    consts = phase_constants(net, x)
    assert consts[0].is_contiguous()
    states, _ = step(net, consts, net.zero_states(5), SpikeRNG(0))
    assert all(s.is_contiguous() for s in states)


def test_shapes_macs_init_and_errors():
    m = ConvPool((1, 28, 28), 64, 5, padding=1, pool=3)
    assert m.conv_shape == (64, 26, 26) and m.out_shape == (64, 8, 8)
    assert m.macs() == 1 * 5 * 5 * 64 * 26 * 26  # eq. 16
    bound = 1 / math.sqrt(25)
    assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.8 * bound
    small = ConvPool((1, 28, 28), 64, 5, padding=1, pool=3, init_scale=0.1)
    assert small.weight.abs().max() <= 0.1 * bound
    assert ConvPool((3, 8, 8), 2, 3, bias=False).bias is None
    with pytest.raises(ValueError, match="convolution output"):
        ConvPool((1, 4, 4), 2, 5)
    with pytest.raises(ValueError, match="pooling output"):
        ConvPool((1, 6, 6), 2, 3, pool=5)
    with pytest.raises(ValueError, match="in_shape"):
        ConvPool((784,), 2, 3)
    with pytest.raises(ValueError, match="padding"):
        ConvPool((1, 8, 8), 2, 3, padding=-1)


def test_fused_step_forms_match_drives():
    """``bias_up + add_up_`` and ``add_down_`` (used by the step) equal drive_up / drive_down."""
    torch.manual_seed(0)
    m = ConvPool((2, 11, 11), 3, 3, 2, 1, 2).double()
    r_lo = torch.rand(3, 2, 11, 11, dtype=torch.float64)
    s_lo = (torch.rand_like(r_lo) < r_lo).double()  # binary spikes: indices come from rates
    s_hi = (torch.rand(3, *m.out_shape, dtype=torch.float64) < 0.5).double()
    ctx = m.context(r_lo)
    acc = m.bias_up().expand(3, *m.out_shape) * 0.5
    m.add_up_(acc, s_lo, ctx, 0.5)
    assert torch.allclose(acc, 0.5 * m.drive_up(s_lo, ctx), atol=1e-12)
    acc = torch.ones_like(r_lo)
    m.add_down_(acc, s_hi, ctx, -2.0)
    assert torch.allclose(acc, 1 - 2 * m.drive_down(s_hi, ctx), atol=1e-12)
    assert ConvPool((1, 8, 8), 2, 3, bias=False).bias_up() is None


def _conv_net(scale=0.5, lam=0.5, neuron=None):
    torch.manual_seed(0)
    inter = [ConvPool((1, 10, 10), 3, 3, padding=1, pool=2, init_scale=scale),  # -> 3x5x5
             ConvPool((3, 5, 5), 4, 3, stride=1, padding=1, pool=2, init_scale=scale),  # -> 4x2x2
             Dense((4, 2, 2), 6, init_scale=scale)]
    return EPNetwork(inter, neuron or Neuron(2.0, "rate"), lam, n_classes=3, n_perclass=2)


def test_network_step_is_projected_gradient_step_of_energy():
    net = _conv_net().double()
    x = torch.rand(4, 1, 10, 10, dtype=torch.float64)
    states = [(torch.rand(4, *s, dtype=torch.float64) * 0.45 + 0.01) for s in net.layer_shapes]
    target = net.target(torch.tensor([0, 1, 2, 1]), torch.float64)
    for beta in (0.0, 0.7):
        leaves = [s.clone().requires_grad_(True) for s in states]
        f = (net.energy(x, leaves) + beta * net.loss(leaves[-1], target)).sum()
        grads = torch.autograd.grad(f, leaves)
        expected = [(s - net.lam * g).clamp(0, 1 / 2.0) for s, g in zip(states, grads)]
        got = step(net, phase_constants(net, x), states, None, beta, target)[0]
        for a, b in zip(got, expected):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-12)


def test_ep_matches_bptt_on_a_conv_net():
    """Mean field, float64, beta 1e-4, three-phase: cosine >= 0.99 for every parameter."""
    torch.manual_seed(0)
    inter = [ConvPool((1, 12, 12), 4, 3, padding=1, pool=2, init_scale=0.3),  # -> 4x6x6
             ConvPool((4, 6, 6), 6, 3, padding=1, pool=2, init_scale=0.3),  # -> 6x3x3
             Dense((6, 3, 3), 6, init_scale=0.3)]
    net = EPNetwork(inter, Neuron(2.0, "rate"), 0.5, n_classes=3, n_perclass=2)
    x = torch.rand(4, 1, 12, 12)
    y = torch.tensor([0, 1, 2, 0])
    rows = compare_ep_bptt(net, x, y, beta=1e-4, T_free=1000, T_nudge=1000)
    assert len(rows) == 6
    for r in rows:
        assert r["bptt_norm"] > 0, r
        assert r["cosine"] >= 0.99, r
        assert 0.9 < r["norm_ratio"] < 1.1, r


def test_ep_training_steps_on_a_5c_shaped_net_with_spikes():
    torch.manual_seed(0)
    shapes, inter = (3, 16, 16), []
    for c in (4, 6, 8, 8):  # 16 -> 8 -> 4 -> 2 -> 1, stride-1 convs with 2x2 pooling (GUIDE 1)
        inter.append(ConvPool(shapes, c, 3, padding=1, pool=2, init_scale=0.3))
        shapes = inter[-1].out_shape
    assert shapes == (8, 1, 1)
    inter.append(Dense(shapes, 3 * 2, init_scale=0.3))
    net = EPNetwork(inter, Neuron(2.0, "bernoulli"), 0.5, n_classes=3, n_perclass=2)
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    rng, gen = SpikeRNG(1), torch.Generator().manual_seed(2)
    cfg = EP(beta=0.5, T_free=20, T_nudge=8, estimator="random-sign")
    for _ in range(3):
        x = torch.rand(5, *net.input_shape)
        y = torch.randint(0, 3, (5,))
        opt.zero_grad()
        res = ep_gradients(net, x, y, cfg, rng, gen)
        assert torch.isfinite(res.loss).all()
        for p in net.parameters():
            assert p.grad is not None and p.grad.shape == p.shape
            assert torch.isfinite(p.grad).all()
        opt.step()
    assert all(s.abs().sum() > 0 for s in res.free)  # every layer left zero
    for p, b in zip(net.parameters(), before):
        assert not torch.equal(p, b)


# ---- build_network -------------------------------------------------------------------------
MNIST_2C = [{"conv": 64, "kernel": 5, "stride": 1, "padding": 1, "pool": 3, "pool_stride": 3},
            {"conv": 128, "kernel": 5, "stride": 1, "padding": 1, "pool": 3, "pool_stride": 3}]


def test_build_network_mnist_2c_shapes():
    net = build_network(Config(layers=MNIST_2C, n_perclass=2), (784,), 10)
    assert net.input_shape == (1, 28, 28)
    assert net.layer_shapes == [(64, 8, 8), (128, 2, 2), (20,)]
    assert [m.conv_shape for m in net.interactions[:2]] == [(64, 26, 26), (128, 6, 6)]
    assert isinstance(net.interactions[2], Dense) and net.interactions[2].weight.shape == (20, 512)
    # deterministic in cfg.seed, defaults for missing keys, conv then dense then readout
    again = build_network(Config(layers=MNIST_2C, n_perclass=2), (1, 28, 28), 10)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))
    assert net.pooled
    assert not build_network(Config(layers=[{"conv": 3}, 7]), (3, 9, 9), 4).pooled
    net = build_network(Config(layers=[{"conv": 3}, {"conv": 2, "pool": 2}, 7], n_perclass=1),
                        (3, 9, 9), 4)
    assert net.layer_shapes == [(3, 7, 7), (2, 2, 2), (7,), (4,)]
    net.check_input(torch.rand(2, 3, 9, 9))
    dense = build_network(Config(layers=[16], n_perclass=1), (784,), 10)
    assert dense.input_shape == (784,)  # dense-only networks keep the flat input


@pytest.mark.parametrize("layers, input_shape, match", [
    ([{"conv": 4, "kernal": 3}], (1, 8, 8), "kernal"),
    ([{"kernel": 3}], (1, 8, 8), "'conv'"),
    ([{"conv": 0}], (1, 8, 8), r"layers\[0\].conv"),
    ([{"conv": 4, "padding": -1}], (1, 8, 8), "padding"),
    ([{"conv": 4, "stride": 1.5}], (1, 8, 8), "stride"),
    ([{"conv": 4, "kernel": 9}], (1, 8, 8), r"layers\[0\]: convolution output"),
    ([{"conv": 4}, {"conv": 4, "pool": 7}], (1, 8, 8), r"layers\[1\]: pooling output"),
    ([16, {"conv": 4}], (1, 8, 8), "conv cannot follow dense"),
    ([{"conv": 4}], (64,), r"\(C, H, W\)"),
    (["wide"], (1, 8, 8), "positive int"),
])
def test_build_network_rejects_bad_specs(layers, input_shape, match):
    with pytest.raises(ValueError, match=match):
        build_network(Config(layers=layers), input_shape, 10)


def test_image_shape():
    assert image_shape((784,)) == (1, 28, 28)
    assert image_shape((3, 32, 32)) == (3, 32, 32)
    with pytest.raises(ValueError, match="784"):
        image_shape((3072,))


def test_async_step_with_pooling_decreases_energy():
    """Even/odd updates keep their pooling indices exact: each half-step lowers E (mean field)."""
    net = _conv_net(lam=0.3).double()
    x = torch.rand(4, 1, 10, 10, dtype=torch.float64)
    states = relax_async_checking_energy(net, x, 600)
    _assert_fixed_point(net, x, states)


def _assert_fixed_point(net, x, states):
    """``states`` is a fixed point of the exact synchronous step (indices from its own rates)."""
    again = step(net, phase_constants(net, x), states)[0]
    for a, b in zip(again, states):
        assert (a - b).abs().max() < 1e-8


@pytest.mark.parametrize("update", ["sync", "async"])
def test_reused_pooling_indices_settle_at_an_exact_fixed_point(update):
    net = _conv_net(lam=0.3).double()
    x = torch.rand(4, 1, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        reused = Dynamics(update, pool_every=7).relax(net, x, net.zero_states(4, torch.float64),
                                                      3000).final
    _assert_fixed_point(net, x, reused)
    # and in between refreshes the reused indices really are stale (the option does something)
    short = Dynamics(update, pool_every=7).relax(net, x, net.zero_states(4, torch.float64),
                                                 3).final
    ref = Dynamics(update).relax(net, x, net.zero_states(4, torch.float64), 3).final
    assert any(not torch.allclose(a, b) for a, b in zip(short, ref))


def test_pool_every_must_be_a_positive_int():
    with pytest.raises(ValueError, match="pool_every"):
        Dynamics(pool_every=0)


def test_unpooling_by_mask_equals_the_scatter_bit_for_bit_even_with_ties():
    """Tiling windows un-pool by the context's mask: one True per window, at the index
    max-pooling chose (ties included: zero rates tie everywhere), and the same values as the
    scatter of the general path."""
    from stochep.engine.interactions.conv import PoolContext
    m = ConvPool((2, 12, 12), 3, 3, 1, 1, 2, None)  # 12x12 conv output, 2x2 windows tile it
    assert m.tiles and not ConvPool((2, 10, 9), 3, 4, 3, 2, 2, 1).tiles  # overlapping: scatter
    g = torch.Generator().manual_seed(0)
    for r_lo in (torch.rand(4, 2, 12, 12, generator=g), torch.zeros(4, 2, 12, 12)):
        ctx = m.context(r_lo)
        assert ctx.mask is not None
        assert (ctx.mask.sum((3, 5)) == 1).all()  # one maximum per window
        s_hi = (torch.rand(4, *m.out_shape, generator=g) < 0.5).float()
        by_mask = m._unpool(s_hi, ctx)
        by_scatter = m._unpool(s_hi, PoolContext(ctx.index, None))
        assert torch.equal(by_mask, by_scatter) and by_mask.shape == (4, *m.conv_shape)
