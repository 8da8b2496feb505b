"""Invalid hyperparameters and inputs raise ValueError naming the parameter and its range."""
import math

import pytest
import torch

from stochep import EP, EPNetwork, Neuron, ep_gradients
from stochep.training.config import Config


@pytest.mark.parametrize("kappa", [0, -1.0, math.nan])
def test_kappa_must_be_positive(kappa):
    with pytest.raises(ValueError, match=r"kappa must be a finite number > 0"):
        Neuron(kappa=kappa)


@pytest.mark.parametrize("lam", [0, -0.1, 1.5])
def test_lam_in_unit_interval(lam):
    with pytest.raises(ValueError, match=r"lam must be in \(0, 1\]"):
        EPNetwork.fc([4, 3], n_classes=2, lam=lam)


EP_OK = {"beta": 0.5, "T_free": 20, "T_nudge": 5, "estimator": "three-phase"}


def test_beta_nonzero_for_a_rule_and_positive_in_a_config():
    with pytest.raises(ValueError, match=r"beta must be a finite nonzero"):
        EP(**{**EP_OK, "beta": 0.0})
    with pytest.raises(ValueError, match=r"beta must be a finite number > 0"):
        Config(beta=-1.0)


@pytest.mark.parametrize("field", ["T_free", "T_nudge"])
def test_T_at_least_one(field):
    with pytest.raises(ValueError, match=rf"{field} must be an integer >= 1"):
        EP(**{**EP_OK, field: 0})


def test_n_perclass_at_least_one():
    with pytest.raises(ValueError, match=r"N_perclass must be an integer >= 1"):
        EPNetwork.fc([4, 3], n_classes=2, n_perclass=0)


def test_unknown_spike_mode_and_estimator():
    with pytest.raises(ValueError, match="spikes must be one of bernoulli, poisson, rate"):
        Neuron(spikes="gauss")
    with pytest.raises(ValueError, match="estimator must be one of"):
        EP(**{**EP_OK, "estimator": "four-phase"})


@pytest.mark.parametrize("key,value,msg", [
    ("kappa", 0.0, "kappa"), ("lam", 2.0, "lam"), ("beta", 0.0, "beta"), ("T_free", 0, "T_free"),
    ("n_perclass", 0, "N_perclass"), ("lr", -1.0, "lr"), ("batch_size", 0, "batch_size")])
def test_config_validate_names_the_field(key, value, msg):
    cfg = Config()
    setattr(cfg, key, value)
    with pytest.raises(ValueError, match=msg):
        cfg.validate()


def _net():
    torch.manual_seed(0)
    return EPNetwork.fc([6, 5], n_classes=2, n_perclass=2, neuron=Neuron(spikes="rate"))


@pytest.mark.parametrize("x", [torch.rand(3, 7), torch.rand(6), torch.rand(3, 2, 3)])
def test_wrong_input_shape(x):
    with pytest.raises(ValueError, match=r"x must be \[N, 6\]"):
        ep_gradients(_net(), x, torch.zeros(x.shape[0], dtype=torch.long), EP(**EP_OK))


def test_nan_input():
    x = torch.rand(3, 6)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        ep_gradients(_net(), x, torch.zeros(3, dtype=torch.long), EP(**EP_OK))


def test_bad_labels():
    with pytest.raises(ValueError, match=r"y must hold integer class indices in \[0, 1\]"):
        ep_gradients(_net(), torch.rand(3, 6), torch.tensor([0, 1, 5]), EP(**EP_OK))
