"""Continual EP (rules/continual.py): in mean field, with a small beta and a small per-step
rate, the summed per-step updates approach EP's update; in a run every nudged step goes through
the run's optimizer, the trainer's step being the last."""
import pytest
import torch
from helpers import TINY

from stochep import EP, Config, EPNetwork, Neuron, Trainer, ep_gradients
from stochep.rules.continual import CEP


# three-phase: the middle free phase must bring the states back to the free equilibrium, so the
# free phase must have settled (at 300 steps a slow mode still drifts: cosine 0.46 on layer 1)
@pytest.mark.parametrize("estimator,T_free,trace", [("two-phase", 300, 1.0),
                                                    ("three-phase", 1000, 1.0),
                                                    ("two-phase", 300, 0.5)])
def test_summed_per_step_updates_approach_the_ep_update(digits, estimator, T_free, trace):
    torch.manual_seed(0)
    net = EPNetwork.fc([64, 32, 32], 10, 2, Neuron(2.0, "rate"), 0.5, 0.5).double()
    x, y = digits.x_train[:32].double(), digits.y_train[:32]
    ep_gradients(net, x, y, EP(1e-3, T_free, 100, estimator))
    g_ep = [p.grad.clone() for p in net.parameters()]
    before = [p.detach().clone() for p in net.parameters()]
    lr = 1e-9  # the weights must barely move within the phase: eta / beta small
    # with a trace the sum telescopes to the contrast of the traces, which a settled phase of
    # 100 steps has brought to the equilibria (the weight (1 - a)^100 left on the start is nil)
    CEP(1e-3, T_free, 100, lr, estimator, trace=trace).gradients(net, x, y)
    for p, b, g in zip(net.parameters(), before, g_ep):
        # the applied steps plus the last increment, left in p.grad for the caller's step
        step = (b - p.detach()).flatten() / lr + p.grad.flatten()
        cos = torch.nn.functional.cosine_similarity(step, g.flatten(), dim=0).item()
        assert cos > 0.999 and abs(step.norm() / g.norm() - 1) < 0.01


def _summed_update(net, rule, x, y) -> torch.Tensor:
    before = [p.detach().clone() for p in net.parameters()]
    rule.gradients(net, x, y)
    out = torch.cat([((b - p.detach()).flatten() / rule.lr_step + p.grad.flatten())
                     for p, b in zip(net.parameters(), before)])
    with torch.no_grad():
        for p, b in zip(net.parameters(), before):
            p.copy_(b)
    return out


def test_a_state_trace_brings_the_spiking_summed_update_closer_to_the_mean_field_one(digits):
    """The trace averages the spike noise out of each contrast: over the same spike draws the
    summed per-step update of a spiking net points closer to the mean-field EP update."""
    from stochep.engine.rng import Streams

    torch.manual_seed(0)
    spiking = EPNetwork.fc([64, 32, 32], 10, 2, Neuron(2.0, "bernoulli"), 0.5, 0.5).double()
    mean_field = EPNetwork.fc([64, 32, 32], 10, 2, Neuron(2.0, "rate"), 0.5, 0.5).double()
    mean_field.load_state_dict(spiking.state_dict())
    x, y = digits.x_train[:64].double(), digits.y_train[:64]
    ep_gradients(mean_field, x, y, EP(0.3, 60, 15, "two-phase"))
    g = torch.cat([p.grad.flatten() for p in mean_field.parameters()])
    cos = {}
    for trace, average in ((1.0, 1), (0.2, 10)):
        rule = CEP(0.3, 60, 15, 1e-9, "two-phase", trace, average, streams=Streams(3))
        u = _summed_update(spiking, rule, x, y)
        cos[trace] = torch.nn.functional.cosine_similarity(u, g, dim=0).item()
    assert cos[0.2] > cos[1.0] + 0.05, cos


def test_cep_trace_out_of_range_is_refused():
    with pytest.raises(ValueError, match="trace"):
        CEP(0.3, 10, 5, trace=0.0)
    with pytest.raises(ValueError, match="trace"):
        Config(algo="cep", rules={"cep": {"trace": 1.5}}).resolved()


def test_cep_steps_the_run_optimizer_at_every_nudged_step(digits):
    cfg = Config(**{**TINY, "algo": "cep"})
    tr = Trainer(cfg, digits, progress=False)
    assert tr.cfg.optimizer == "adamw" and tr.cfg.estimator == "three-phase"  # its tuned section
    assert isinstance(tr.rule, CEP) and tr.rule.steps_optimizer
    before = [p.detach().clone() for p in tr.net.parameters()]
    m = tr.train_step(digits.x_train[:64], digits.y_train[:64])
    after = [p.detach().clone() for p in tr.net.parameters()]
    assert m["n"] == 64 and all(not torch.equal(a, b) for a, b in zip(before, after))
    # AdamW counts its steps: two nudged phases of T_nudge steps each, the last the trainer's
    steps = {int(s["step"]) for s in tr.opt.state_dict()["state"].values()}
    assert steps == {2 * TINY["T_nudge"]}


def test_cep_refuses_data_parallel():
    from stochep.engine.rng import Streams
    from stochep.training.build import build_training_rules

    with pytest.raises(ValueError, match="steps the optimizer inside each batch"):
        build_training_rules(Config(algo="cep").resolved(), Streams(0), world_size=2)


def test_cep_on_a_conv_net_with_spikes_moves_every_parameter():
    from stochep.engine.rng import Streams
    from stochep.training.models import build_network

    cfg = Config(algo="cep", layers=[{"conv": 3, "kernel": 3, "padding": 1, "pool": 2}],
                 n_perclass=1, T_free=8, T_nudge=3)
    net = build_network(cfg, (1, 8, 8), 10)
    before = [p.detach().clone() for p in net.parameters()]
    rule = CEP.from_config(cfg.resolved(), Streams(0))
    res = rule.gradients(net, torch.rand(6, 1, 8, 8), torch.arange(6))
    assert res.nudged is not None and len(res.free) == 2
    # intermediate steps applied (SGD at lr_step without an optimizer), the last left in p.grad
    assert all(not torch.equal(p, b) for p, b in zip(net.parameters(), before))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_cli_bad_cep_setting_is_one_line():
    import os
    import subprocess
    import sys

    from helpers import assert_one_line_error

    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "stochep", "train", "--algo", "cep", "--set",
                          "rules.cep.estimator=sideways"], capture_output=True, text=True,
                         env=env, check=False)
    assert_one_line_error(res, "estimator")


def test_cep_starts_the_free_phase_as_the_dynamics_say(digits, monkeypatch):
    """``start: sweep`` (the -fast presets) applies to continual EP as to EP: the free phase
    begins from the bottom-up sweep, not from zeros."""
    import stochep.engine.dynamics as dynamics

    cfg = Config(**{**TINY, "algo": "cep", "start": "sweep"}).resolved()
    rule = CEP.from_config(cfg)
    seen = []
    relax = dynamics.Dynamics.relax

    def spy(self, net, x, init, steps, *a, **k):
        seen.append([s.clone() for s in init])
        return relax(self, net, x, init, steps, *a, **k)

    monkeypatch.setattr(dynamics.Dynamics, "relax", spy)
    net = EPNetwork.fc([64, 32], 10, 1, Neuron(2.0, "rate"), 0.5, 0.5)
    sweep = rule.dynamics.initial(net, digits.x_train[:8])  # (before the weights move)
    rule.gradients(net, digits.x_train[:8], digits.y_train[:8])
    assert all(torch.equal(a, b) for a, b in zip(seen[0], sweep))
    assert any(s.abs().sum() > 0 for s in seen[0])  # not the zeros of the default start
