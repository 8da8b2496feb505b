import pytest
import torch

from stochep.data import load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture
def batch(digits):
    return digits.x_train[:32].double(), digits.y_train[:32]


def pytest_configure(config):
    # The test networks are small: one thread is as fast and immune to oversubscription when
    # other processes share the cores.
    torch.set_num_threads(1)
