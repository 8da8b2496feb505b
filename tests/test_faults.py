"""Device faults: dead and stuck neurons, dropped spikes, weight variation; training with them and
the ``stochep faults`` sweep."""
import json
import subprocess
import sys

import pytest
import torch
from helpers import TINY, assert_one_line_error

from stochep.engine.dynamics import Dynamics
from stochep.engine.faults import DeviceFaults
from stochep.engine.network import EPNetwork
from stochep.engine.neurons import LIF, Neuron
from stochep.engine.rng import SpikeRNG
from stochep.training.config import Config, ConfigError
from stochep.training.trainer import Trainer


def _net(neuron=None):
    torch.manual_seed(0)
    net = EPNetwork.fc([20, 40, 30], n_classes=2, n_perclass=5, init_scale=0.5,
                       neuron=neuron or Neuron())
    with torch.no_grad():  # every hidden neuron driven well above threshold
        for m in net.interactions:
            m.bias.fill_(0.3)
    return net


def _spikes(net, steps=30, rng_seed=0):
    seen = []
    x = torch.rand(16, 20)
    Dynamics().relax(net, x, net.zero_states(16), steps, SpikeRNG(rng_seed),
                     observer=lambda t, s: seen.append([a.clone() for a in s]))
    return [torch.stack([s[i] for s in seen]) for i in range(len(seen[0]))]  # [T, B, n]


@pytest.mark.parametrize("neuron", [Neuron(), LIF()], ids=["stochastic", "lif"])
def test_dead_neurons_never_fire_and_stuck_ones_always_do(neuron):
    net = _net(neuron)
    net.faults = DeviceFaults.build({"dead": 0.25, "stuck": 0.1}, net)
    spikes = _spikes(net)
    for i, n in enumerate((40, 30)):
        dead, stuck = net.faults.dead[i], net.faults.stuck[i]
        assert int(dead.sum()) == round(0.25 * n) and int(stuck.sum()) == round(0.1 * n)
        assert not torch.any(dead & stuck)
        assert torch.all(spikes[i][:, :, dead] == 0)
        assert torch.all(spikes[i][:, :, stuck] == 1)
        assert spikes[i][:, :, ~(dead | stuck)].mean() > 0.05  # the others still fire
    assert net.faults.dead[2] is None  # a number applies to the hidden layers only
    rates = net.rates(net.zero_states(3))  # what EP's contrasts read
    assert torch.all(rates[0][:, net.faults.stuck[0]] == 1)


def test_spike_drop_loses_that_fraction_of_spikes():
    net = _net()
    clean = _spikes(net)
    net.faults = DeviceFaults.build({"drop": 0.3, "layers": "all"}, net)
    faulty = _spikes(net)
    for a, b in zip(clean, faulty):
        ratio = b.mean() / a.mean()  # the rates settle alike; the spikes sent are 30% fewer
        assert 0.6 < ratio < 0.8
    f = net.faults
    ones = [torch.ones(200, 40)]
    lost = 1 - f.signals(ones, [0], SpikeRNG(3))[0].mean().item()
    assert lost == pytest.approx(0.3, abs=0.01)
    assert torch.allclose(f.signals(ones, [0])[0], torch.full((200, 40), 0.7))  # mean field


def test_weight_variation_is_fixed_per_seed_and_restores_the_weights():
    net = _net()
    w = [m.weight.detach().clone() for m in net.interactions]
    f = DeviceFaults.build({"variation": 0.2, "seed": 4}, net)
    assert all(torch.equal(a, b) for a, b in zip(f.factors,
                                                 DeviceFaults.build({"variation": 0.2,
                                                                     "seed": 4}, net).factors))
    with f.varied(net):
        for m, w0, fac in zip(net.interactions, w, f.factors):
            assert torch.allclose(m.weight, w0 * fac)
            assert (m.weight / w0 - 1).std().item() == pytest.approx(0.2, rel=0.1)
    assert all(torch.equal(m.weight, w0) for m, w0 in zip(net.interactions, w))
    other = DeviceFaults.build({"variation": 0.2, "seed": 5}, net)
    assert not torch.equal(other.factors[0], f.factors[0])


def test_dead_neurons_do_not_learn_and_faults_cost_accuracy(digits):
    cfg = Config(**{**TINY, "epochs": 2}, optimizer="sgd", lr=0.05, scheduler="none",
                 faults={"dead": 0.5})
    tr = Trainer(cfg, digits, progress=False)
    dead = tr.net.faults.dead[0]
    w0 = tr.net.interactions[0].weight.detach().clone()
    tr.fit()
    w1 = tr.net.interactions[0].weight.detach()
    assert torch.equal(w1[dead], w0[dead])  # rate 0 in both phases: their contrast is 0
    assert not torch.equal(w1[~dead], w0[~dead])
    clean = Trainer(Config(**{**TINY, "epochs": 2}), digits, progress=False)
    clean.fit()
    x, y = digits.x_test, digits.y_test
    acc = clean.evaluate(x, y)
    clean.set_faults({"stuck": 0.3})
    assert clean.evaluate(x, y) < acc - 0.05
    clean.set_faults({})
    assert clean.evaluate(x, y) == acc


def test_training_with_weight_variation_updates_the_programmed_weights(digits):
    cfg = Config(**TINY, optimizer="sgd", lr=0.05, scheduler="none", faults={"variation": 0.3})
    tr = Trainer(cfg, digits, progress=False)
    w0 = [m.weight.detach().clone() for m in tr.net.interactions]
    tr.train_step(digits.x_train[:32], digits.y_train[:32])
    for m, w, p in zip(tr.net.interactions, w0, tr.net.interactions):
        # the update is written to the programmed weights: w - lr * grad, exactly
        assert torch.allclose(m.weight, w - 0.05 * p.weight.grad, atol=1e-7)


def test_resume_is_exact_with_faults(digits, tmp_path):
    cfg = {**TINY, "epochs": 2, "faults": {"dead": 0.1, "drop": 0.2, "variation": 0.1}}
    full = Trainer(Config(**cfg), digits, str(tmp_path / "full"), progress=False)
    full.fit()
    cut = Trainer(Config(**cfg), digits, str(tmp_path / "cut"), progress=False)
    cut.fit(stop_after=1)
    resumed = Trainer.from_run(str(tmp_path / "cut"))
    resumed.fit()
    assert all(torch.equal(a, b) for a, b in zip(full.net.parameters(),
                                                 resumed.net.parameters()))
    assert full.history[-1]["test_acc"] == resumed.history[-1]["test_acc"]


def test_bad_fault_settings_are_one_line():
    for bad, needle in [({"dead": 1.5}, "faults.dead must be a fraction"),
                        ({"daed": 0.1}, "did you mean 'dead'"),
                        ({"drop": [0.1, 0.2, 0.3]}, "one value per layer (2"),
                        ({"dead": 0.7, "stuck": 0.5}, "at most 1"),
                        ({"variation": -0.1}, "faults.variation"),
                        ({"layers": "some"}, "faults.layers")]:
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
            Config(faults=bad)
    cfg = Config().apply_overrides(["faults.dead=0.1", "faults.drop=[0, 0.2]"]).validate()
    assert cfg.faults == {"dead": 0.1, "drop": [0, 0.2]}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, timeout=300)


def test_faults_command_writes_json_for_a_sweep_and_a_point(digits, tmp_path):
    run = tmp_path / "run"
    Trainer(Config(**TINY), digits, str(run), progress=False).fit()
    out = tmp_path / "faults"
    res = _cli("faults", "--checkpoint", str(run / "checkpoint_best.pt"), "--sweep",
               "dead=0,0.5", "--sweep", "stuck=0.3", "--point", "dead=0.1,drop=0.2",
               "--eval-subset", "100", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rep = json.loads((out / "faults.json").read_text())
    assert rep["n_test"] == 100 and set(rep["sweeps"]) == {"dead", "stuck"}
    assert rep["sweeps"]["dead"][0]["accuracy"] == rep["clean_accuracy"]
    assert rep["sweeps"]["dead"][1]["realised"]["dead"][0] == 0.5
    assert rep["points"][0]["faults"] == {"dead": 0.1, "drop": 0.2}
    assert rep["sweeps"]["stuck"][0]["loss_points"] > 0  # 30% stuck neurons cost accuracy


@pytest.mark.parametrize("args, needle", [
    (["--sweep", "dying=0.1"], "unknown fault kind 'dying'"),
    (["--sweep", "dead=0.1,x"], "is not a number"),
    (["--point", "dead"], "--point"),
    (["--sweep", "dead=1.5"], "faults.dead must be a fraction"),
])
def test_faults_command_bad_input_is_one_line(tmp_path, args, needle):
    res = _cli("faults", "--checkpoint", str(tmp_path / "none.pt"), *args,
               "--out", str(tmp_path / "f"))  # checked before the checkpoint is read
    assert_one_line_error(res, needle)


def test_faults_command_missing_checkpoint_is_one_line(tmp_path):
    assert_one_line_error(_cli("faults", "--checkpoint", str(tmp_path / "none.pt"),
                               "--out", str(tmp_path / "f")), "no such file")
