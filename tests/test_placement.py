"""The training set goes on the accelerator once when it fits (placement.py); on a CPU, or where
it does not fit, it stays where it is and the caller's tensors are never touched."""
import torch
from helpers import TINY

from stochep import Config, Trainer
from stochep.data import load_dataset
from stochep.training.placement import SHARE, fits, resident


def test_fits_takes_a_share_of_an_accelerators_free_memory_and_never_the_cpu():
    gpu = torch.device("cuda", 0)
    assert fits(int(SHARE * 8e9), gpu, int(8e9))
    assert not fits(int(SHARE * 8e9) + 1, gpu, int(8e9))
    assert not fits(1, torch.device("cpu"), None) and not fits(1, gpu, None)


def test_resident_on_the_cpu_returns_the_same_tensors():
    x, y = torch.rand(5, 3), torch.arange(5)
    (a, b), moved = resident([x, y], torch.device("cpu"))
    assert a is x and b is y and not moved


def test_trainer_gathers_batches_from_its_own_training_tensors():
    data = load_dataset("digits")
    tr = Trainer(Config(**TINY), data, progress=False)
    assert not tr.data_on_device and tr._x_train is tr.data.x_train
    before = tr.data.x_train.clone()
    tr.fit()
    assert torch.equal(tr.data.x_train, before)
