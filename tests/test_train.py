"""Training on real data: learns, and one seed gives bit-identical results."""
import json
import subprocess
import sys

import pytest
import torch

from stochep.training.config import Config
from stochep.training.trainer import Trainer


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


@pytest.mark.slow
def test_module_entry_point_trains_one_short_epoch(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stochep", "train", "--epochs", "1", "--no-progress",
                          "--out", str(tmp_path / "run"), "--set", "layers=[16]",
                          "--set", "T_free=5", "--set", "T_nudge=2"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 1 and 0 <= summary["test_accuracy"] <= 1
    assert (tmp_path / "run" / "checkpoint_last.pt").is_file()


def _one_pixel_images(n=64):
    """Flat 784-pixel images (MNIST's layout) with one lit pixel at row 10, column 12."""
    from stochep.data import Dataset
    x = torch.zeros(n, 28, 28)
    x[:, 10, 12] = 1.0
    y = torch.arange(n) % 10
    return Dataset("mnist", x.reshape(n, 784), y, x[:10].reshape(10, 784), y[:10], 10)


def test_augment_shifts_flat_mnist_images_within_the_pad():
    cfg = Config(dataset="mnist", layers=[16], epochs=1, batch_size=16, T_free=4, T_nudge=2,
                 val_fraction=0.0, augment=True, augment_pad=2, augment_flip=False)
    tr = Trainer(cfg, _one_pixel_images(), progress=False)
    seen, real = [], tr.rule

    class Recording:  # the rule, recording the batches it is given
        def gradients(self, net, x, y):
            seen.append(x)
            return real.gradients(net, x, y)

    tr.rule = Recording()
    tr.train_epoch()
    lit = torch.cat(seen).reshape(-1, 28, 28).nonzero()[:, 1:]  # (row, col) of each lit pixel
    assert len(lit) == 64  # the pixel is never cropped away (pad 2 < its distance to the edge)
    assert (lit[:, 0] - 10).abs().max() <= 2 and (lit[:, 1] - 12).abs().max() <= 2
    assert len({tuple(p.tolist()) for p in lit}) > 5  # the offsets vary
    assert not (lit[:, 1] == 27 - 12).any()  # no mirror with augment_flip=false


def test_augment_on_non_image_data_is_a_clear_error(digits):
    import pytest
    with pytest.raises(ValueError, match="augment=true needs image data"):
        Trainer(Config(augment=True), digits, progress=False)
    with pytest.raises(ValueError, match="augment_pad"):
        Config(augment_pad=-1).validate()
