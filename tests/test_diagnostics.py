"""Diagnostics (diagnostics.py), rate calibration (calibrate.py) and the recipe options."""
import pytest
import torch

from stochep import EP, EPNetwork, Neuron
from stochep.engine.calibrate import calibrate_rates
from stochep.engine.costs import RateMSE, StateMSE
from stochep.engine.dynamics import relax
from stochep.engine.rng import SpikeRNG
from stochep.tools.diagnose import activity_warnings, diagnose, gradient_report, layer_activity
from stochep.training.config import Config
from stochep.training.trainer import Trainer


def _net(mode="bernoulli", widths=(64, 32, 24)):
    torch.manual_seed(0)
    return EPNetwork.fc(list(widths), n_classes=10, n_perclass=2, neuron=Neuron(2.0, mode),
                        lam=0.5, init_scale=0.5)


def _batch(digits, n=32):
    return digits.x_train[:n], digits.y_train[:n]


def test_a_silenced_layer_is_reported_silent(digits):
    net = _net()
    with torch.no_grad():
        net.interactions[1].bias.fill_(-10.0)  # layer 2 can never fire
    x, y = _batch(digits)
    rep = diagnose(net, x, y, EP(0.3, 20, 8, "three-phase"), seeds=2)
    assert rep["layers"][1]["rate"] == 0.0 and rep["layers"][1]["at_low"] == 1.0
    assert any(w.startswith("layer 2 is silent") for w in rep["warnings"])
    assert not any(w.startswith("layer 1 ") for w in rep["warnings"])


def test_saturated_layer_warning():
    acts = [{"rate": 0.2, "at_high": 0.1}, {"rate": 0.99, "at_high": 0.95}]
    assert activity_warnings(acts) == ["layer 2 is saturated (95% of neurons at the top)"]


def test_mean_field_run_has_cosine_one_against_itself(digits):
    net = _net("rate")
    x, y = _batch(digits)
    rep = gradient_report(net, x, y, EP(1e-3, 400, 400, "three-phase"), T_bptt=400)
    for row in rep["layers"]:
        assert row["stoch_vs_mf_cos"] > 0.9999
        assert abs(row["stoch_vs_mf_norm"] - 1) < 1e-3  # float32 run vs float64
        assert row["snr"] > 1e6
    assert rep["cosine_min_vs_bptt"] > 0.99  # small beta, settled: EP = BPTT
    fast = gradient_report(net, x, y, EP(1e-3, 400, 400, "three-phase"), T_bptt=400,
                           dtype=torch.float32)  # the float32 references agree
    assert abs(fast["cosine_min_vs_bptt"] - rep["cosine_min_vs_bptt"]) < 1e-3


def test_gradient_report_runs_the_given_update_order(digits):
    from stochep.engine.dynamics import Dynamics
    net = _net("rate")
    x, y = _batch(digits)
    short = EP(1e-3, 3, 3, "three-phase")  # unsettled: the update order shows
    sync = gradient_report(net, x, y, short, T_bptt=400)
    even_odd = gradient_report(net, x, y, short, T_bptt=400, dynamics=Dynamics("async"))
    assert abs(sync["cosine_min_vs_bptt"] - even_odd["cosine_min_vs_bptt"]) > 1e-3
    # both estimates (the net's and its mean-field copy's) ran even/odd: they still agree
    assert all(row["stoch_vs_mf_cos"] > 0.9999 for row in even_odd["layers"])


def test_layer_activity_counts_bounds():
    net = _net()
    states = [torch.tensor([[0.0, 0.25, 0.5, 0.5]])]
    (a,) = layer_activity(net, states)
    assert a == {"rate": pytest.approx(0.625), "at_low": 0.25, "at_high": 0.5}


def test_calibration_moves_rates_to_the_target_and_only_biases(digits):
    net = _net()
    weights = [m.weight.detach().clone() for m in net.interactions]
    x = digits.x_train[:128]
    rates = calibrate_rates(net, x, target_rate=0.2, steps=40)
    assert all(abs(r - 0.2) < 0.03 for r in rates), rates
    assert all(torch.equal(w, m.weight) for w, m in zip(weights, net.interactions))
    assert net.neuron.spikes == "bernoulli"  # the neuron model is restored
    with pytest.raises(ValueError, match="target_rate"):
        calibrate_rates(net, x, target_rate=1.5)


def test_trainer_calibrates_and_logs_per_layer_diagnostics(digits, tmp_path):
    cfg = Config(layers=[32], epochs=1, T_free=10, T_nudge=4, calibrate_rate=0.2)
    tr = Trainer(cfg, digits, str(tmp_path / "run"), progress=False)
    mf = tr.net
    states = relax(mf, tr.inputs(tr.data.x_train[:256]), mf.zero_states(256), 10, SpikeRNG(0))
    rate = mf.neuron.rate(states[0]).mean().item()
    assert 0.1 < rate < 0.35  # started near 0.2 (spiking run of the calibrated net)
    tr.fit()
    row = tr.history[-1]
    for key in ("firing_rate", "at_low", "at_high", "update_ratio", "nudge_firing_rate"):
        assert len(row[key]) == 2
    assert all(u > 0 for u in row["update_ratio"])


def test_per_layer_learning_rates_reach_the_optimizer(digits):
    cfg = Config(layers=[32, 16], lr=0.1, lr_layers=[1.0, 0.5, 0.25], epochs=1)
    tr = Trainer(cfg, digits, progress=False)
    groups = tr.opt.param_groups
    assert [g["lr"] for g in groups] == [0.1, 0.05, 0.025]
    assert [set(map(id, g["params"])) for g in groups] == \
        [set(map(id, m.parameters())) for m in tr.net.interactions]
    with pytest.raises(ValueError, match="one factor per interaction"):
        Trainer(Config(layers=[32], lr_layers=[1.0]), digits, progress=False)
    with pytest.raises(ValueError, match="lr_layers"):
        Config(lr_layers=[1.0, -2.0]).validate()


def test_state_cost_is_the_rate_cost_over_kappa_squared_inside_the_box():
    kappa = 2.0
    neuron = Neuron(kappa)
    xi = torch.rand(5, 6) / kappa
    y = torch.nn.functional.one_hot(torch.randint(0, 6, (5,)), 6).float()
    s, r = StateMSE(), RateMSE()
    assert torch.allclose(s.value(xi, y, neuron) * kappa**2, r.value(xi, y, neuron))
    assert torch.allclose(s.grad(xi, y, neuron) * kappa**2, r.grad(xi, y, neuron))
    leaf = xi.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(s.value(leaf, y, neuron).sum(), leaf)
    assert torch.allclose(g, s.grad(xi, y, neuron))


def test_cost_option_reaches_the_network(digits):
    assert Trainer(Config(cost="rate"), digits, progress=False).net.cost.name == "rate"
    assert Trainer(Config(), digits, progress=False).net.cost.name == "state"
    with pytest.raises(ValueError, match="cost"):
        Config(cost="hinge").validate()


def test_diagnose_command_prints_a_table_and_the_cosine_line(capsys, tmp_path):
    from stochep.cli import main

    out = tmp_path / "diag.json"
    assert main(["diagnose", "--batch", "16", "--seeds", "2", "--set", "T_free=20",
                 "--set", "T_nudge=8", "--set", "update=async", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["param", "rate", "at_low"]
    assert len(lines) >= 3 and lines[-1].startswith("cosine_min_vs_bptt=")
    assert -1 <= float(lines[-1].split("=")[1]) <= 1
    import json
    rep = json.loads(out.read_text())
    assert (rep["update"], rep["T_free"], rep["T_nudge"]) == ("async", 20, 8)
    assert main(["diagnose", "--seeds", "1"]) == 2  # one line, exit 2
    assert "--seeds must be an integer >= 2" in capsys.readouterr().err
