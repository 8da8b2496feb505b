"""The BPTT baseline trains the same network objects (issue: EP vs BPTT on one argument)."""
import torch

from stochep.config import Config
from stochep.train import Trainer


def test_bptt_training_lowers_the_loss_on_real_digits(digits):
    cfg = Config(algo="bptt", epochs=3, T_free=20, layers=[64], batch_size=32, init_scale=0.2,
                 bptt={"lr": 0.002, "optimizer": "adamw"})
    tr = Trainer(cfg, digits, progress=False)
    assert tr.cfg.lr == 0.002 and tr.cfg.optimizer == "adamw"  # the bptt: section applies
    tr.fit()
    losses = [h["train_loss"] for h in tr.history]
    assert losses[-1] < 0.8 * losses[0]
    assert tr.history[-1]["test_acc"] > 0.5  # chance is 0.1


def test_bptt_gradient_flows_through_spikes_straight_through(digits):
    from stochep.bptt import bptt_gradients
    from stochep.rng import SpikeRNG

    tr = Trainer(Config(layers=[32]), digits, progress=False)
    x, y = digits.x_train[:16], digits.y_train[:16]
    bptt_gradients(tr.net, x, y, T=10, rng=SpikeRNG(0))
    for p in tr.net.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
