"""Continual EP (rules/continual.py): in mean field, with a small beta and a small per-step
rate, the summed per-step updates approach EP's update; it steps from a config and refuses an
optimizer that would change the weights again."""
import pytest
import torch
from helpers import TINY

from stochep import EP, Config, EPNetwork, Neuron, Trainer, ep_gradients
from stochep.rules.continual import CEP


def test_summed_per_step_updates_approach_the_ep_update(digits):
    torch.manual_seed(0)
    net = EPNetwork.fc([64, 32, 32], 10, 2, Neuron(2.0, "rate"), 0.5, 0.5).double()
    x, y = digits.x_train[:32].double(), digits.y_train[:32]
    ep_gradients(net, x, y, EP(1e-3, 300, 100, "two-phase"))
    g_ep = [p.grad.clone() for p in net.parameters()]
    before = [p.detach().clone() for p in net.parameters()]
    lr = 1e-9  # the weights must barely move within the phase: eta / beta small
    CEP(1e-3, 300, 100, lr).gradients(net, x, y)
    for p, b, g in zip(net.parameters(), before, g_ep):
        step = (b - p.detach()).flatten() / lr  # the summed per-step updates, as a gradient
        cos = torch.nn.functional.cosine_similarity(step, g.flatten(), dim=0).item()
        assert cos > 0.999 and abs(step.norm() / g.norm() - 1) < 0.01
        assert torch.equal(p.grad, torch.zeros_like(p))  # the optimizer gets nothing to do


def test_cep_steps_from_a_config_with_its_inert_optimizer(digits):
    cfg = Config(**{**TINY, "algo": "cep", "lr": 0.02})
    tr = Trainer(cfg, digits, progress=False)
    assert (tr.cfg.optimizer, tr.cfg.momentum, tr.cfg.weight_decay) == ("sgd", 0.0, 0.0)
    assert isinstance(tr.rule, CEP) and tr.rule.lr_step == 0.02
    before = [p.detach().clone() for p in tr.net.parameters()]
    m = tr.train_step(digits.x_train[:64], digits.y_train[:64])
    after = [p.detach().clone() for p in tr.net.parameters()]
    assert m["n"] == 64 and all(not torch.equal(a, b) for a, b in zip(before, after))
    with pytest.raises(ValueError, match="optimizer must change nothing"):
        Config(algo="cep", rules={"cep": {"optimizer": "adamw"}})
