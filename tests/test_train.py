"""Training on real data: learns, and one seed gives bit-identical results."""
import subprocess
import sys

import torch

from stochep.config import Config
from stochep.train import Trainer


def _fit(digits, **over):
    cfg = Config(epochs=1, **over)
    tr = Trainer(cfg, digits, progress=False)
    tr.fit()
    return tr


def test_same_seed_gives_bit_identical_weights(digits):
    a, b = _fit(digits, seed=3), _fit(digits, seed=3)
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)
    assert a.history[0]["test_acc"] == b.history[0]["test_acc"]
    c = _fit(digits, seed=4)
    assert not torch.equal(a.net.interactions[0].weight, c.net.interactions[0].weight)


def test_small_network_learns_real_digits_well_above_chance(digits):
    tr = Trainer(Config(epochs=4), digits, progress=False)
    summary = tr.fit()
    assert summary["test_accuracy"] > 0.8  # chance is 0.1
    assert tr.history[-1]["train_loss"] < tr.history[0]["train_loss"]
    rates = tr.history[-1]["firing_rate"]
    assert len(rates) == 2 and all(0 < r < 1 for r in rates)


def test_module_entry_point_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "stochep", "train", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--config" in out.stdout
