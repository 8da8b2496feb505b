"""Speed options keep the dynamics right: even/odd updates, early exit, compile fallback, bf16."""
import warnings

import pytest
import torch
from dynamics_checks import relax_async_checking_energy

from stochep import EP, EPNetwork, Neuron, ep_gradients
from stochep.engine.dynamics import Dynamics
from stochep.rules.ep import low_precision_copy


def _net(mode="rate", lam=0.5):
    torch.manual_seed(0)
    return EPNetwork.fc([20, 16, 12, 8], n_classes=3, n_perclass=2, neuron=Neuron(2.0, mode),
                        lam=lam, init_scale=0.5).double()


def test_async_updates_decrease_energy_and_reach_the_same_fixed_point():
    net = _net(lam=0.3)
    x = torch.rand(6, 20, dtype=torch.float64)
    states = relax_async_checking_energy(net, x, 300)
    sync = Dynamics("sync").relax(net, x, net.zero_states(6, torch.float64), 600).final
    for a, b in zip(states, sync):
        assert torch.allclose(a, b, atol=1e-6)


def test_async_step_draws_one_spike_per_neuron_and_returns_the_spikes_it_used():
    from stochep.engine.dynamics import _update, phase_constants, step, step_async
    from stochep.engine.rng import SpikeRNG
    net = _net("bernoulli")
    x = torch.rand(5, 20, dtype=torch.float64)
    consts = phase_constants(net, x)
    states = [torch.rand_like(s) for s in net.zero_states(5, torch.float64)]
    drawn = []
    for fn in (step, step_async):
        rng = SpikeRNG(3)
        uniform = rng.uniform
        rng.uniform = lambda n, dtype=torch.float32: drawn.append((fn, n)) or uniform(n, dtype)
        new, spikes = fn(net, consts, states, rng)
    per_step = {fn: sum(n for f, n in drawn if f is fn) for fn in (step, step_async)}
    assert per_step[step_async] == per_step[step] == sum(s.numel() for s in states)
    # even layers update from the old states, then odd ones from the even layers' new states
    assert len(states) == 4
    mid = [new[i] if i % 2 == 0 else states[i] for i in range(4)]
    for i in range(4):
        before = states if i % 2 == 0 else mid
        again = _update(net, net.neuron, i, consts, before, spikes, [None] * 5, 0.0, None)
        assert torch.equal(again, new[i])
    assert all(((s == 0) | (s == 1)).all() for s in spikes)


def test_early_exit_stops_once_settled_and_matches_the_full_phase():
    net = _net()
    x = torch.rand(6, 20, dtype=torch.float64)
    dyn = Dynamics("sync", tol=1e-6)
    early = dyn.relax(net, x, net.zero_states(6, torch.float64), 2000)
    assert early.steps < 2000
    full = Dynamics().relax(net, x, net.zero_states(6, torch.float64), 2000)
    assert full.steps == 2000
    for a, b in zip(early.final, full.final):
        assert (a - b).abs().max() < 1e-4


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken_compile(fn, **kw):
        def run(*a):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    net = _net()
    x = torch.rand(4, 20, dtype=torch.float64)
    dyn = Dynamics(compile=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = dyn.relax(net, x, net.zero_states(4, torch.float64), 30).final
    assert any("torch.compile failed" in str(m.message) for m in w)
    assert "no compiler here" in dyn.compile_error
    ref = Dynamics().relax(net, x, net.zero_states(4, torch.float64), 30).final
    assert all(torch.equal(a, b) for a, b in zip(out, ref))


def test_bf16_dynamics_keep_float32_master_weights_and_contrast():
    torch.manual_seed(0)
    net = EPNetwork.fc([20, 16], n_classes=3, n_perclass=2, neuron=Neuron(2.0, "rate"),
                       init_scale=0.5)
    low = low_precision_copy(net)
    x = torch.rand(32, 20)
    y = torch.randint(0, 3, (32,))
    cfg = EP(0.2, 80, 40, "three-phase")
    ep_gradients(net, x, y, cfg)
    ref = torch.cat([p.grad.flatten() for p in net.parameters()])
    ep_gradients(net, x, y, cfg, dynamics_net=low)
    got = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in net.parameters())
    assert next(low.parameters()).dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(got, ref, dim=0) > 0.9


@pytest.mark.parametrize("bad", [{"update": "random"}, {"tol": -1.0}])
def test_bad_dynamics_options(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Dynamics(**bad)


def _compiled_digits_run(monkeypatch, min_gain, compile=True, min_gain_later=None):
    """Two epochs of a tiny digits net (short last batch; validation and test batches of other
    sizes), returning the trainer and the graphs torch.compile built in each epoch.
    ``min_gain_later`` replaces the required gain for the second epoch (load that arrives)."""
    import torch._dynamo.utils as dynamo_utils

    import stochep.engine.dynamics
    from stochep.training.config import Config
    from stochep.training.trainer import Trainer
    monkeypatch.setattr(stochep.engine.dynamics, "COMPILE_MIN_GAIN", min_gain)
    cfg = Config.from_dict({"dataset": "digits", "layers": [16], "T_free": 6, "T_nudge": 2,
                            "batch_size": 64, "epochs": 2, "compile": compile, "seed": 3})
    data = cfg.load_data()
    data.x_train, data.y_train = data.x_train[:300], data.y_train[:300]
    tr = Trainer(cfg, data, None, progress=False)
    graphs = []
    for epoch in (1, 2):
        if epoch == 2 and min_gain_later is not None:
            monkeypatch.setattr(stochep.engine.dynamics, "COMPILE_MIN_GAIN", min_gain_later)
        before = dynamo_utils.counters["stats"]["unique_graphs"]
        tr.fit(stop_after=epoch)
        graphs.append(dynamo_utils.counters["stats"]["unique_graphs"] - before)
    return tr, graphs


@pytest.mark.slow
def test_compile_builds_few_graphs_and_none_after_the_first_epoch(monkeypatch):
    tr, graphs = _compiled_digits_run(monkeypatch, min_gain=0.0)  # always keep compiling
    assert tr.dynamics.compile_refused is None and tr.dynamics.compile_error is None
    # free, nudged (+beta, -beta) and evaluation graphs; batch sizes 64, 14 (last), 30 (val)
    # and 359 (test) share them, and the spike stream's growth stays outside
    assert 1 <= graphs[0] <= 4
    assert graphs[1] == 0


def test_compile_that_does_not_pay_runs_eagerly_with_eager_weights(monkeypatch, capsys):
    tr, graphs = _compiled_digits_run(monkeypatch, min_gain=float("inf"))  # never pays
    assert "running eagerly" in tr.dynamics.compile_refused
    err = capsys.readouterr().err
    assert err.count("compile=true") == 1 and "x eager" in err
    eager, _ = _compiled_digits_run(monkeypatch, min_gain=0.0, compile=False)
    for a, b in zip(tr.net.parameters(), eager.net.parameters()):
        assert torch.equal(a, b)
    assert graphs[1] == 0


def test_compile_that_stops_paying_later_falls_back_to_eager(monkeypatch, capsys):
    import stochep.engine.dynamics
    monkeypatch.setattr(stochep.engine.dynamics, "RECHECK_EVERY", 40)  # an epoch is about 80 steps
    tr, graphs = _compiled_digits_run(monkeypatch, min_gain=0.0, min_gain_later=float("inf"))
    assert tr.dynamics.compile_refused.startswith("after ")
    assert "running eagerly" in tr.dynamics.compile_refused
    assert tr.dynamics._step is tr.dynamics._eager
    err = capsys.readouterr().err
    assert err.count("compile=true") == 1
    assert graphs[1] == 0


def test_graphs_option_compiles_the_step_in_reduce_overhead_mode(monkeypatch):
    """``graphs=true`` asks torch.compile for CUDA graphs (reduce-overhead mode, one shape per
    graph); ``compile=true`` for a dynamic-shape graph; neither leaves the step eager."""
    from stochep.training.config import Config
    cfg = Config(graphs=True)  # (its checks build the dynamics too)
    asked = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: asked.append(kw) or fn)
    assert Dynamics.from_config(cfg).graphs
    Dynamics(compile=True)
    assert asked == [{"mode": "reduce-overhead"}, {"dynamic": True}]
    with pytest.raises(ValueError, match="graphs must be true or false"):
        Dynamics(graphs="yes")
