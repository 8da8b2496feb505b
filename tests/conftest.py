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


# ---- the device the device-generic tests run on (tests/test_device.py) ----------------------
def _test_device_name() -> str:
    import os
    return os.environ.get("STOCHEP_TEST_DEVICE", "cpu").strip() or "cpu"


@pytest.fixture(scope="session")
def device():
    """``$STOCHEP_TEST_DEVICE`` (default ``cpu``): ``cuda``, ``cuda:N``, ``mps``... A device that
    was asked for but is not there fails the test (it never silently falls back to the CPU)."""
    name = _test_device_name()
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"STOCHEP_TEST_DEVICE={name}: this PyTorch sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        pytest.fail(f"STOCHEP_TEST_DEVICE={name}: MPS is not available")
    return dev
