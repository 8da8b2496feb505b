"""Low-precision learning: rounding, N-bit weight grids, updates landed on them, state grids."""
import subprocess
import sys

import pytest
import torch
from helpers import TINY, TINY_ARGS, assert_one_line_error

from stochep.engine.network import EPNetwork
from stochep.engine.quantize import StateGrid, round_grid
from stochep.engine.rng import SpikeRNG
from stochep.training.config import Config, ConfigError
from stochep.training.quantize import WeightQuantizer
from stochep.training.trainer import Trainer


def test_stochastic_rounding_is_unbiased_and_lands_on_a_neighbour():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([-2.7, -0.3, 0.05, 0.5, 1.25, 3.9], dtype=torch.float64)
    draws = torch.stack([round_grid(x, "stochastic", torch.rand(x.shape, generator=g,
                                                                 dtype=torch.float64))
                         for _ in range(20000)])
    assert torch.all((draws == x.floor()) | (draws == x.ceil()))
    assert torch.allclose(draws.mean(0), x, atol=0.015)  # E[R(x)] = x
    assert torch.equal(round_grid(x, "nearest"), torch.round(x))  # biased: 0.05 -> 0 always


def _net(seed=0):
    torch.manual_seed(seed)
    return EPNetwork.fc([16, 12], n_classes=2, n_perclass=2, init_scale=0.5)


def _on_grid(q):
    for w, d in zip(q.weights, q.scales):
        k = w.detach() / d
        assert torch.allclose(k, k.round(), atol=1e-4)
        assert k.round().abs().max() <= q.q


def test_weights_start_on_their_grid_with_the_scale_fixed_by_headroom():
    net = _net()
    w0 = [m.weight.detach().clone() for m in net.interactions]
    q = WeightQuantizer(net, bits=4, headroom=2.0)
    assert q.q == 7
    for d, w in zip(q.scales, w0):
        assert d == pytest.approx(2.0 * w.abs().max().item() / 7)
    _on_grid(q)
    assert all(k.abs().max() <= 4 for k in q.levels())  # headroom 2: half the range used at init


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_updates_land_on_the_grid_unbiased_only_when_stochastic(rounding):
    net = _net()
    q = WeightQuantizer(net, bits=8, rounding=rounding,
                        generator=torch.Generator().manual_seed(1))
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    q.attach(opt)
    w = net.interactions[0].weight
    d = q.scales[0]
    start = w.detach().clone()
    steps = 400
    for _ in range(steps):  # a step of 0.3 grid levels each time
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        w.grad = torch.full_like(w, -0.3 * d)
        opt.step()
        _on_grid(q)
    moved = ((w.detach() - start) / d).round()
    unclipped = (start / d).round() + 0.3 * steps <= q.q  # weights that did not hit the top
    if rounding == "stochastic":
        assert moved[unclipped].mean().item() == pytest.approx(0.3 * steps, rel=0.05)
    else:
        assert torch.all(moved == 0)  # below half a level, every update is lost


def test_update_bits_clip_one_step():
    net = _net()
    q = WeightQuantizer(net, bits=8, update_bits=3, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    q.attach(opt)
    before = q.levels()
    for p in net.parameters():
        p.grad = torch.full_like(p, -50 * q.scales[0])
    opt.step()
    change = q.levels()[0] - before[0]
    assert change.max() <= 3 and change.min() >= 0  # 3-bit updates: at most 3 levels a step
    assert (change == 3).float().mean() > 0.9


def _grid_ok(tr):
    _on_grid(tr.quant)


@pytest.mark.parametrize("algo", ["ep", "bptt"])
def test_training_keeps_weights_on_the_grid_for_ep_and_bptt(digits, algo):
    cfg = Config(**TINY, algo=algo, quantize={"weights": 4, "updates": 4})
    tr = Trainer(cfg, digits, progress=False)
    start = [k.clone() for k in tr.quant.levels()]
    tr.fit()
    _grid_ok(tr)
    assert any(not torch.equal(a, b) for a, b in zip(start, tr.quant.levels()))  # it learned
    assert tr.history[-1]["val_acc"] > 0.15  # above chance (10%) after one tiny epoch


@pytest.mark.parametrize("extra", [{"quantize": {"weights": 6, "updates": 4}},
                                   {"quantize": {"weights": 8, "states": 6}},
                                   {"quantize": {"weights": 8}, "optimizer": "adamw",
                                    "lr": 0.003}],
                         ids=["weights-updates", "states", "adamw"])
def test_resume_is_exact_with_quantize(digits, tmp_path, extra):
    cfg = {**TINY, "epochs": 2, **extra}
    full = Trainer(Config(**cfg), digits, str(tmp_path / "full"), progress=False)
    full.fit()
    cut = Trainer(Config(**cfg), digits, str(tmp_path / "cut"), progress=False)
    cut.fit(stop_after=1)
    resumed = Trainer.from_run(str(tmp_path / "cut"))
    assert resumed.quant.scales == full.quant.scales
    resumed.fit()
    for a, b in zip(full.net.parameters(), resumed.net.parameters()):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in full.history]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.history]


def test_state_grid_levels_unbiased_and_straight_through():
    from stochep.engine.neurons import Neuron

    neuron = Neuron(kappa=2.0)
    grid = StateGrid(3, "stochastic")
    xi = torch.full((20000,), 0.23)
    q = grid([xi], neuron, SpikeRNG(0))[0]
    delta = 0.5 / 7
    assert torch.allclose(q / delta, (q / delta).round(), atol=1e-5)
    assert set((q / delta).round().unique().tolist()) == {3.0, 4.0}  # the two neighbours
    assert q.mean().item() == pytest.approx(0.23, abs=2e-3)
    near = StateGrid(3, "nearest")([xi], neuron)[0]
    assert torch.allclose(near, torch.full_like(xi, 3 * delta))
    x = torch.rand(5, requires_grad=True)
    StateGrid(4)([x * 0.5], neuron, SpikeRNG(1))[0].sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.5))  # gradient passes straight through


def test_state_grid_is_applied_by_the_dynamics(digits):
    tr = Trainer(Config(**TINY, quantize={"states": 3}), digits, progress=False)
    rec = tr.record(digits.x_test[:8], seed=0)
    delta = tr.net.neuron.high / 7
    for s in rec.states:
        assert torch.allclose(s / delta, (s / delta).round(), atol=1e-4)


def test_set_quantize_keys_and_bad_values():
    cfg = Config().apply_overrides(["quantize.weights=8", "quantize.updates=8"]).validate()
    assert cfg.quantize == {"weights": 8, "updates": 8}
    assert cfg.sections()["hardware"]["quantize"] == {"weights": 8, "updates": 8}
    for bad, needle in [({"weigths": 8}, "did you mean 'weights'"),
                        ({"weights": 1}, "quantize.weights must be"),
                        ({"updates": 8}, "set quantize.weights too"),
                        ({"weights": 8, "rounding": "up"}, "quantize.rounding"),
                        ({"weights": 8, "headroom": 0.5}, "quantize.headroom")]:
        with pytest.raises(ConfigError, match=needle):
            Config(quantize=bad)
    with pytest.raises(ConfigError, match="ema_decay"):
        Config(quantize={"weights": 8}, ema_decay=0.9)
    with pytest.raises(ConfigError, match="stateless"):
        Config(quantize={"states": 8}, neuron="lif")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_bad_quantize_value_is_one_line():
    assert_one_line_error(_cli("train", *TINY_ARGS, "--set", "quantize.weights=40"),
                          "quantize.weights")
