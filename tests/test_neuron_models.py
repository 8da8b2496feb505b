"""The baseline neuron models of figure 3: full precision, LIF with a low-pass trace, sigma-delta
with step-size annealing, and predictive coding (eq. 17)."""
import pytest
import torch

from stochep import Config
from stochep.engine.dynamics import Dynamics
from stochep.engine.network import EPNetwork
from stochep.engine.neurons import FullPrecision, Neuron
from stochep.engine.neurons.lif import LIF
from stochep.engine.neurons.sigma_delta import PredictiveCoding, SigmaDelta, quantise
from stochep.rules.ep import EP, ep_gradients
from stochep.training.build import build_neuron
from stochep.training.trainer import Trainer


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


# ---- one step against hand-computed values --------------------------------------------------
def test_lif_step_fires_resets_filters_and_leaks():
    lif = LIF(kappa=2.0, theta=0.25, a=0.2)
    carry = ([t(0.3, 0.1, 0.25)], [t(0.5, 0.0, 1.0)])
    spikes, carry = lif.emit(None, carry)
    assert torch.equal(spikes[0], t(1.0, 0.0, 1.0))  # V >= theta fires
    assert torch.allclose(carry[0][0], t(0.05, 0.1, 0.0))  # reset by subtracting theta
    assert torch.allclose(carry[1][0], t(0.6, 0.0, 1.0))  # r <- 0.8 r + 0.2 s
    states, carry = lif.integrate(None, [t(0.2, 0.4, -0.1)], carry, lam=0.5)
    assert torch.allclose(carry[0][0], t(0.225, 0.45, -0.1))  # V <- (1 - lam) V + lam I
    assert torch.allclose(states[0], t(0.3, 0.0, 0.5))  # xi = r / kappa
    assert torch.allclose(lif.rate(states[0]), carry[1][0])  # EP reads the trace as the rate
    zero = LIF(reset="zero")
    _, (v, _) = zero.emit(None, ([t(0.3, 0.1)], [t(0.0, 0.0)]))
    assert torch.equal(v[0], t(0.0, 0.1))


def test_sigma_delta_quantiser_and_annealed_step():
    s, v = quantise(t(0.2, -0.3, 0.4), t(0.4, 0.5, 0.05))
    assert torch.equal(s, t(1.0, 0.0, 0.0))
    assert torch.allclose(v, t(-0.4, 0.2, 0.45))
    sd = SigmaDelta(kappa=2.0, eps0=0.4, eps_decay=0.5, alpha0=0.5, alpha_decay=0.0)
    assert sd.eps(4) == pytest.approx(0.2) and sd.alpha(9) == pytest.approx(0.5)
    xi = [t(0.1, 0.3)]
    sent, carry = sd.emit(xi, sd.start(xi))  # rho(xi) = (0.2, 0.6): one spike
    assert carry[0] == 1 and torch.equal(sent[0], t(0.0, 1.0))
    assert torch.allclose(carry[1][0], t(0.2, -0.4))
    new, _ = sd.integrate(xi, [t(0.25, 1.0)], (4, carry[1]), lam=0.5)  # eps_4 = 0.2
    assert torch.allclose(new[0], t(0.8 * 0.1 + 0.2 * 0.5, 0.5))  # clamped at 1/kappa


def test_predictive_coding_encoder_decoder_step():
    pc = PredictiveCoding(kappa=1.0, alpha0=0.5, alpha_decay=0.0)
    prev, r, v = t(0.2, 0.8), t(0.1, 0.9), t(0.0, 0.3)
    sent, (step, v2, p2, r2) = pc.emit([t(0.6, 0.4)], (3, [v], [prev], [r]))
    enc = (t(0.6, 0.4) - 0.5 * prev) / 0.5  # (1.0, 0.0)
    assert step == 4 and torch.allclose(p2[0], t(0.6, 0.4))
    assert torch.equal(sent[0], r2[0])
    s = (v + enc > 0.5).double()  # (1, 0)
    assert torch.allclose(v2[0], v + enc - s)
    assert torch.allclose(r2[0], 0.5 * r + 0.5 * s)  # the decoder: Dec / W = filtered spikes


def test_identity_quantiser_with_shared_alpha_decodes_exactly():
    torch.manual_seed(0)
    pc = PredictiveCoding(kappa=2.0, alpha0=0.503, alpha_decay=0.292, quantize=False)
    w = torch.randn(5, 7, dtype=torch.float64)
    xi = [torch.rand(3, 7, dtype=torch.float64) * 0.5]
    carry = pc.start(xi)
    for _ in range(30):
        xi = [torch.rand(3, 7, dtype=torch.float64) * 0.5]
        sent, carry = pc.emit(xi, carry)
        assert torch.allclose(sent[0] @ w.T, pc.rate(xi[0]) @ w.T, atol=1e-12)


def test_sigma_delta_spike_count_tracks_the_summed_rate():
    torch.manual_seed(1)
    sd = SigmaDelta()
    xi = [torch.zeros(4, 50, dtype=torch.float64)]
    carry, count, total = sd.start(xi), 0, 0
    for _ in range(300):
        xi = [torch.rand(4, 50, dtype=torch.float64) * 0.5]
        spikes, carry = sd.emit(xi, carry)
        count, total = count + spikes[0], total + sd.rate(xi[0])
        assert (count - total).abs().max() <= 1.0
    assert count.sum() > 0


# ---- in the network ---------------------------------------------------------------------------
def _net(neuron, seed=0, init_scale=1.0):
    torch.manual_seed(seed)
    return EPNetwork.fc([12, 16], n_classes=3, n_perclass=2, neuron=neuron,
                        init_scale=init_scale).double()


@pytest.mark.parametrize("neuron", [LIF(), SigmaDelta(), PredictiveCoding()])
def test_step_counter_and_state_run_on_from_free_into_nudged_phase(neuron):
    net = _net(neuron)
    x = torch.rand(5, 12, dtype=torch.float64)
    dyn = Dynamics()
    free = dyn.relax(net, x, net.zero_states(5, x.dtype), 20)
    assert all(((s >= 0) & (s <= 0.5)).all() for s in free.final)
    nudged = dyn.relax(net, x, free.final, 7, beta=0.5, target=net.target(
        torch.tensor([0, 1, 2, 0, 1]), x.dtype), carry=free.carry)
    if isinstance(neuron, SigmaDelta):
        assert free.carry[0] == 20 and nudged.carry[0] == 27  # t counts on; restarts per batch
        assert dyn.relax(net, x, free.final, 1).carry[0] == 1
    again = dyn.relax(net, x, free.final, 7, beta=0.5, target=net.target(
        torch.tensor([0, 1, 2, 0, 1]), x.dtype), carry=free.carry)
    assert all(torch.equal(a, b) for a, b in zip(nudged.final, again.final))  # carry unchanged


@pytest.mark.parametrize("neuron", [LIF(), SigmaDelta(), PredictiveCoding()])
def test_ep_gradients_with_stateful_neurons_are_finite_and_nonzero(neuron):
    net = _net(neuron)
    x, y = torch.rand(6, 12, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    ep = EP(beta=0.5, T_free=30, T_nudge=10, estimator="two-phase")
    ep_gradients(net, x, y, ep)
    grads = [p.grad for p in net.parameters()]
    assert all(torch.isfinite(g).all() for g in grads) and grads[-2].abs().sum() > 0


def test_predictive_coding_settles_close_to_the_rate_model():
    """Without quantisation (and a fixed step), predictive coding is the rate model exactly;
    with spikes it settles near the same fixed point (a contractive net: init 0.5)."""
    net = _net(PredictiveCoding(eps0=0.5, quantize=False), init_scale=0.5)
    x = torch.rand(5, 12, dtype=torch.float64)
    ref = Dynamics().relax(net, x, net.zero_states(5, x.dtype), 60, neuron=Neuron(spikes="rate"))
    exact = Dynamics().relax(net, x, net.zero_states(5, x.dtype), 60)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(exact.final, ref.final))
    net.neuron = PredictiveCoding()
    spiking = Dynamics().relax(net, x, net.zero_states(5, x.dtype), 300)
    err = max((a - b).abs().max().item() for a, b in zip(spiking.final, ref.final))
    assert err < 0.02  # measured 0.004; the box is 0.5 wide


def test_stateful_neurons_need_synchronous_updates():
    net = _net(LIF())
    x = torch.rand(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="update='sync' only"):
        Dynamics(update="async").relax(net, x, net.zero_states(2, x.dtype), 3)


def test_full_precision_is_the_rate_model():
    fp = build_neuron(Config(neuron="full-precision"))
    assert isinstance(fp, FullPrecision) and not fp.stochastic
    xi = [torch.rand(4, 9)]
    assert torch.equal(fp.sample([fp.rate(xi[0])], None)[0], fp.rate(xi[0]))
    with pytest.raises(ValueError, match="does not spike"):
        FullPrecision(spikes="bernoulli")


@pytest.mark.parametrize("name", ["full-precision", "lif", "sigma-delta", "predictive-coding"])
def test_each_neuron_model_learns_digits(digits, name):
    tr = Trainer(Config(neuron=name, epochs=1), digits, progress=False)
    assert tr.fit()["test_accuracy"] > 0.7  # chance 0.1; the hard-sigmoid net gets ~0.9


def test_bad_neuron_options_are_one_line_errors():
    with pytest.raises(ValueError, match="neuron_options for neuron 'lif'"):
        Config(neuron="lif", neuron_options={"bogus": 1}).validate()
    with pytest.raises(ValueError, match="theta"):
        Config(neuron="lif", neuron_options={"theta": -1.0}).validate()
    with pytest.raises(ValueError, match="eps0"):
        Config(neuron="sigma-delta", neuron_options={"eps0": 2.0}).validate()
    with pytest.raises(ValueError, match="BPTT does not unroll"):
        Config(neuron="lif", algo="bptt").validate()
