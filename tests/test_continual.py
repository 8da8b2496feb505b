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
@pytest.mark.parametrize("estimator,T_free", [("two-phase", 300), ("three-phase", 1000)])
def test_summed_per_step_updates_approach_the_ep_update(digits, estimator, T_free):
    torch.manual_seed(0)
    net = EPNetwork.fc([64, 32, 32], 10, 2, Neuron(2.0, "rate"), 0.5, 0.5).double()
    x, y = digits.x_train[:32].double(), digits.y_train[:32]
    ep_gradients(net, x, y, EP(1e-3, T_free, 100, estimator))
    g_ep = [p.grad.clone() for p in net.parameters()]
    before = [p.detach().clone() for p in net.parameters()]
    lr = 1e-9  # the weights must barely move within the phase: eta / beta small
    CEP(1e-3, T_free, 100, lr, estimator).gradients(net, x, y)
    for p, b, g in zip(net.parameters(), before, g_ep):
        # the applied steps plus the last increment, left in p.grad for the caller's step
        step = (b - p.detach()).flatten() / lr + p.grad.flatten()
        cos = torch.nn.functional.cosine_similarity(step, g.flatten(), dim=0).item()
        assert cos > 0.999 and abs(step.norm() / g.norm() - 1) < 0.01


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
