"""Every shipped preset builds its network and trains one batch, on synthetic data of its
dataset's shape (no files needed), with its own rule, estimator, neuron and speed options; only
the phase lengths and the batch are shortened."""
import os

import pytest
import torch

from stochep import Dataset, Trainer, load_preset
from stochep.data import dataset_shape

PRESET_DIR = os.path.join(os.path.dirname(__file__), "..", "src", "stochep", "training",
                          "presets")
PRESETS = sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".yaml"))


def synthetic(name, shape, n_classes, n=4):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % n_classes
    if name == "imdb":  # token ids (0: padding) and an embedding table
        vocab = 50
        x = torch.randint(1, vocab + 1, (n, *shape), generator=g).float()
        emb = torch.randn(vocab + 1, 8, generator=g) * 0.1
        emb[0] = 0
        return Dataset(name, x, y, x.clone(), y.clone(), n_classes, embedding=emb)
    x = torch.rand(n, *shape, generator=g)
    return Dataset(name, x, y, x.clone(), y.clone(), n_classes)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_trains_one_batch(preset):
    cfg = load_preset(preset)
    steps = ["T_free=4", "T_nudge=2", "batch_size=4", "calibrate_rate=0.0", "val_fraction=0.0"]
    if cfg.average_last > 2:
        steps.append("average_last=2")
    if cfg.T_free_warm:
        steps.append("T_free_warm=3")
    if "bptt" in cfg.rules and cfg.rules["bptt"].get("loss_last", 1) > 4:
        steps.append("rules.bptt.loss_last=2")
    cfg.apply_overrides(steps)
    shape, n_classes = dataset_shape(cfg.dataset)
    tr = Trainer(cfg, synthetic(cfg.dataset, shape, n_classes), progress=False)
    before = [p.detach().clone() for p in tr.net.parameters()]
    m = tr.train_step(tr.data.x_train, tr.data.y_train, index=torch.arange(4))
    assert m["n"] == 4 and torch.isfinite(torch.tensor(m["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.net.parameters()))
