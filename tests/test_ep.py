"""EP estimators against BPTT of the settled dynamics (Theorem 3.2, eq. 9, 14, 22)."""
import numpy as np
import pytest
import torch

from stochep import EP, EPNetwork, Neuron, ep_gradients
from stochep.rules.bptt import bptt_gradients
from stochep.tools.gradcheck import compare_ep_bptt


def _net(widths, scale=0.5, mode="rate"):
    torch.manual_seed(0)
    return EPNetwork.fc(widths, n_classes=10, n_perclass=2, neuron=Neuron(2.0, mode),
                        init_scale=scale)


@pytest.mark.parametrize("widths", [[64, 48], [64, 48, 32]], ids=["1-hidden", "2-hidden"])
@pytest.mark.parametrize("estimator", ["two-phase", "three-phase"])
def test_ep_gradient_matches_bptt(batch, widths, estimator):
    x, y = batch
    rows = compare_ep_bptt(_net(widths), x, y, beta=1e-4, T_free=1000, T_nudge=1000,
                           estimator=estimator)
    assert len(rows) == 2 * len(widths)  # a weight and a bias per interaction
    for r in rows:
        assert r["bptt_norm"] > 1e-6
        assert r["cosine"] >= 0.99, r
        assert 0.95 < r["norm_ratio"] < 1.05, r


def _flat_grads(net):
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_estimator_bias_is_first_order_for_two_phase_second_order_for_three_phase(batch):
    x, y = batch
    # The error is a power of beta only while no neuron crosses a box boundary ([0, 1/kappa])
    # between phases; for this network and batch that holds up to beta ~ 3e-4.
    net = _net([64, 32], scale=0.5).double()
    bptt_gradients(net, x, y, T=1500)
    ref = _flat_grads(net)
    betas = np.array([1e-5, 3e-5, 1e-4, 3e-4])
    slopes = {}
    for est in ("two-phase", "three-phase"):
        errs = []
        for b in betas:
            ep_gradients(net, x, y, EP(float(b), 1500, 1500, est))
            errs.append(((_flat_grads(net) - ref).norm() / ref.norm()).item())
        slopes[est] = np.polyfit(np.log(betas), np.log(errs), 1)[0]
    assert 0.85 < slopes["two-phase"] < 1.15, slopes
    assert 1.8 < slopes["three-phase"] < 2.2, slopes


def test_random_sign_draws_signs_from_its_generator(batch):
    x, y = batch
    net = _net([64, 32]).double()
    cfg = EP(1e-3, 300, 300, "random-sign")
    gen = torch.Generator().manual_seed(0)
    grads = []
    for _ in range(8):
        ep_gradients(net, x, y, cfg, sign_generator=gen)
        grads.append(_flat_grads(net))
    signs = []
    for beta in (1e-3, -1e-3):
        ep_gradients(net, x, y, EP(beta, 300, 300, "two-phase"))
        signs.append(_flat_grads(net))
    matched = [0 if torch.equal(g, signs[0]) else 1 if torch.equal(g, signs[1]) else None
               for g in grads]
    assert None not in matched and set(matched) == {0, 1}
    with pytest.raises(ValueError, match="sign_generator"):
        ep_gradients(net, x, y, cfg)


def test_ep_update_lowers_the_loss_with_a_torch_optimizer(batch):
    x, y = batch
    net = _net([64, 32]).double()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    cfg = EP(0.05, 200, 100, "three-phase")
    first = ep_gradients(net, x, y, cfg).loss.mean().item()
    for _ in range(10):
        opt.step()
        last = ep_gradients(net, x, y, cfg).loss.mean().item()
    assert last < 0.9 * first


def test_stochastic_ep_gradient_points_along_bptt(batch):
    """Spiking (Bernoulli) EP, averaged over repeats, agrees in direction with mean-field BPTT."""
    from stochep import SpikeRNG

    x, y = batch
    x = x.float()
    net = _net([64, 48], scale=0.5, mode="bernoulli")
    rng = SpikeRNG(0)
    acc = None
    for _ in range(20):
        ep_gradients(net, x, y, EP(0.5, 100, 50, "three-phase"), rng)
        g = _flat_grads(net)
        acc = g if acc is None else acc + g
    ref_net = _net([64, 48], scale=0.5).double()
    bptt_gradients(ref_net, x.double(), y, T=1000)
    cos = torch.nn.functional.cosine_similarity(acc.double(), _flat_grads(ref_net), dim=0)
    assert cos > 0.7, cos
