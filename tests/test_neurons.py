"""Neurons and spike sampling: rho (eq. 2), unbiased Bernoulli (eq. 1) and Poisson (eq. 21)."""
import pytest
import torch

from stochep import Dynamics, Neuron, SpikeRNG, rho
from stochep.engine.network import EPNetwork
from stochep.training.build import build_neuron


def test_rho_is_hard_sigmoid_with_gain():
    xi = torch.tensor([-1.0, 0.0, 0.1, 0.25, 0.5, 2.0])
    assert torch.equal(rho(xi, 2.0), torch.tensor([0.0, 0.0, 0.2, 0.5, 1.0, 1.0]))


def test_uniforms_are_uniform_and_independent():
    u = SpikeRNG(3).uniform(200_000, torch.float64)
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.003
    assert abs(u.var().item() - 1 / 12) < 0.002
    v = SpikeRNG(3).uniform(200_000, torch.float64)  # same seed, same stream
    assert torch.equal(u, v)
    rng = SpikeRNG(3)
    a, b = rng.uniform(100_000, torch.float64), rng.uniform(100_000, torch.float64)
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.02  # consecutive steps


def test_rng_state_roundtrip_reproduces_stream():
    rng = SpikeRNG(5)
    rng.uniform(1000)
    saved = rng.state_dict()
    after = rng.uniform(3000)  # grows the stream too
    rng2 = SpikeRNG(99)
    rng2.load_state_dict(saved)
    assert torch.equal(rng2.uniform(3000), after)


@pytest.mark.parametrize("mode", ["bernoulli", "poisson"])
def test_spike_mean_matches_firing_probability(mode):
    neuron = Neuron(kappa=2.0, spikes=mode, dt=1.0)
    rates = torch.linspace(0, 1, 11, dtype=torch.float64).repeat(20_000, 1)
    spikes = neuron.sample([rates], SpikeRNG(0))[0]
    expected = rates[0] if mode == "bernoulli" else 1 - torch.exp(-rates[0])
    n = rates.shape[0]
    sigma = (expected * (1 - expected) / n).sqrt().clamp_min(1e-12)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert ((spikes.mean(0) - expected).abs() <= 5 * sigma + 1e-12).all()


@pytest.mark.parametrize("mode", ["bernoulli", "poisson"])
def test_stochastic_drive_is_unbiased(mode):
    """E[W s] equals W E[s]: the expected spike drive is the mean-field drive."""
    torch.manual_seed(0)
    net = EPNetwork.fc([16, 12], n_classes=2, n_perclass=3, neuron=Neuron(2.0, mode)).double()
    xi = torch.rand(1, 12, dtype=torch.float64) / 2.0
    rate = net.neuron.rate(xi).expand(40_000, 12)
    s = net.neuron.sample([rate], SpikeRNG(1))[0]
    inter = net.interactions[1]
    drive = inter.drive_up(s)
    expected = inter.drive_up(net.neuron.fire_probability(rate[:1]))[0]
    stderr = drive.std(0) / drive.shape[0] ** 0.5
    assert ((drive.mean(0) - expected).abs() <= 5 * stderr + 1e-12).all()


def test_rate_mode_passes_rates_and_needs_no_rng():
    r = torch.rand(4, 5)
    assert Neuron(spikes="rate").sample([r], None)[0] is r
    with pytest.raises(ValueError, match="rng"):
        Neuron(spikes="bernoulli").sample([r], None)


# ---- the state box: [0, 1/kappa] (default) or [0, 1] (eq. 2 read literally) ----
@pytest.mark.parametrize("kappa", [0.5, 1.0])
def test_unit_box_ep_matches_bptt_in_mean_field(digits, kappa):
    from stochep.tools.gradcheck import compare_ep_bptt

    torch.manual_seed(0)
    net = EPNetwork.fc([64, 32, 32], 10, 2, Neuron(kappa, "rate", box="unit"), 0.5, 0.5)
    rows = compare_ep_bptt(net, digits.x_train[:16], digits.y_train[:16], 1e-4, 600, 600)
    assert min(r["cosine"] for r in rows) > 0.999
    assert all(abs(r["norm_ratio"] - 1) < 0.01 for r in rows)


def test_unit_box_caps_small_kappa_rates_and_gates_large_kappa_gain():
    low, high = Neuron(0.5, "rate", box="unit"), Neuron(2.0, "rate", box="unit")
    assert low.high == 1.0 and not low.state_gain and low.rate(torch.ones(1)).item() == 0.5
    assert Neuron(0.5).high == 2.0 and Neuron(2.0).high == 0.5  # the default box: [0, 1/kappa]
    assert high.state_gain
    assert torch.equal(high.gain_at(torch.tensor([0.0, 0.5, 0.7])), torch.tensor([2.0, 2.0, 0.0]))
    # a saturated neuron (xi > 1/kappa) only decays, whatever its drive: rho'(xi) = 0 there
    net = EPNetwork.fc([4, 3], n_classes=2, n_perclass=1, neuron=high, lam=0.5)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    x = torch.ones(1, 4)
    start = [torch.tensor([[0.8, 0.2, 0.0]]), torch.zeros(1, 2)]
    nxt = Dynamics().relax(net, x, start, 1).final
    assert nxt[0][0, 0].item() == pytest.approx(0.4)
    assert nxt[0][0, 1].item() > 0.1  # below 1/kappa the drive acts


def test_box_is_a_neuron_option_from_config():
    from stochep import Config

    cfg = Config(neuron_options={"box": "unit"}, kappa=0.5)
    assert build_neuron(cfg).high == 1.0
    with pytest.raises(ValueError, match="box must be one of kappa, unit"):
        Config(neuron_options={"box": "open"})


def test_bf16_states_draw_unbiased_spikes():
    # uniforms are drawn in float32: in bf16 about 2^-9 of them round to 1.0, and a neuron at
    # rate 1 would then miss spikes
    rng = SpikeRNG(0)
    n = Neuron(2.0, "bernoulli")
    ones = torch.ones(64, 1024, dtype=torch.bfloat16)
    for _ in range(20):
        assert n.sample([ones], rng)[0].min().item() == 1.0
    half = torch.full((64, 1024), 0.5, dtype=torch.bfloat16)
    rate = torch.stack([n.sample([half], rng)[0].float().mean() for _ in range(20)]).mean()
    assert abs(rate.item() - 0.5) < 0.003
