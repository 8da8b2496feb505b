"""Operation and energy accounting (section 5.1, eq. 16, 17)."""
import json
import os
import subprocess
import sys

import pytest
import torch
from shared_data import needs_data

from stochep.engine.interactions import ConvPool, Dense
from stochep.engine.rng import SpikeRNG
from stochep.tools import energy as opcount
from stochep.tools.energy import (
    conv_macs,
    energy_reduction,
    measure_firing_rates,
    predictive_coding_overhead,
)
from stochep.training.config import Config
from stochep.training.models import build_network


def test_conv_and_dense_macs_by_hand():
    # MNIST 2C first layer: 1 -> 64 channels, 5x5 kernel, padding 1: 28 -> 26 (then pool 3 -> 8)
    conv = ConvPool((1, 28, 28), 64, 5, 1, 1, 3)
    assert conv.macs() == 1 * 5 * 5 * 64 * 26 * 26 == 1_081_600
    assert conv_macs(1, 64, 5, 5, 26, 26) == 1_081_600
    conv2 = ConvPool((64, 8, 8), 128, 5, 1, 1, 3)  # 8 -> 6 (-> 2 after pooling)
    assert conv2.macs() == 64 * 25 * 128 * 6 * 6
    assert Dense(784, 512).macs() == 784 * 512
    net = build_network(Config(dataset="mnist", layers=[512, 512], n_perclass=70), (784,), 10)
    assert opcount.layer_macs(net) == [784 * 512, 512 * 512, 512 * 700]
    assert opcount.layer_macs(net, 10) == [784 * 512, 512 * 512, 512 * 10]


def test_energy_reduction_by_hand():
    fp, snn, r = [100, 50, 10], [100, 50, 70], [0.5, 0.25, 0.1]
    e_fp = 4.6 * 2 * (100 + 50 + 10)
    # presynaptic: forward 1 on the input = MACs, forward i>1 at the rate below, backward i at
    # the rate of layer i
    mac = 100
    ac = (0.5 * 50 + 0.25 * 70) + (0.5 * 100 + 0.25 * 50 + 0.1 * 70)
    assert energy_reduction(fp, snn, r) == pytest.approx(e_fp / (4.6 * mac + 0.9 * ac))
    # the paper's reading: both directions IFR_i MAC_i, all ACs
    ac_paper = 2 * (0.5 * 100 + 0.25 * 50 + 0.1 * 70)
    assert energy_reduction(fp, snn, r, convention="paper") == pytest.approx(
        e_fp / (0.9 * ac_paper))
    with pytest.raises(ValueError, match="one firing rate per layer"):
        energy_reduction(fp, snn, r[:2])


def test_predictive_coding_overhead_is_4I_4I_3I():
    rows = predictive_coding_overhead([512, 700], steps=75)
    for n, r in zip([512, 700], rows):
        assert (r["mults_per_step"], r["adds_per_step"], r["memory_units"]) == (4 * n, 4 * n, 3 * n)
        assert r["mults"] == r["adds"] == 4 * n * 75


def test_measured_rates_average_sampled_spikes(digits):
    cfg = Config(dataset="digits", layers=[32], n_perclass=2, T_free=20, T_nudge=5)
    net = build_network(cfg, digits.input_shape, 10)
    neuron = net.neuron
    rates = measure_firing_rates(net, digits.x_test[:64], digits.y_test[:64], 20, 5, 0.5,
                                 SpikeRNG(0))
    assert net.neuron is neuron  # restored
    assert len(rates) == 2 and all(0.0 < r < 1.0 for r in rates)
    # spikes average to the rates: mean-field rates over the same trajectory are close
    net_rate = build_network(Config(**{**cfg.to_dict(), "spikes": "rate"}), (64,), 10)
    mf = measure_firing_rates(net_rate, digits.x_test[:64], digits.y_test[:64], 20, 5, 0.5, None)
    assert rates == pytest.approx(mf, abs=0.05)


def test_cli_energy_2fc_with_the_papers_rates(tmp_path):
    out = tmp_path / "e.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "stochep", "energy", "--preset", "mnist-2fc",
                          "--rates", "0.21", "0.19", "0.12", "--data-dir",
                          str(needs_data("mnist")), "--json", str(out)],
                         check=False, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    rep = json.loads(out.read_text())
    macs_fp = [784 * 512, 512 * 512, 512 * 10]
    macs_snn = [784 * 512, 512 * 512, 512 * 700]
    assert rep["layer_macs_fp"] == macs_fp and rep["layer_macs_snn"] == macs_snn
    assert rep["snn"]["reduction"] == pytest.approx(
        energy_reduction(macs_fp, macs_snn, [0.21, 0.19, 0.12]))
    assert rep["paper_convention"]["reduction"] == pytest.approx(19.3, abs=0.1)  # paper: 19x
    assert "reduction" in res.stdout and "predictive coding" in res.stdout


def test_cli_energy_wrong_number_of_rates_is_a_user_error(capsys):
    from stochep.cli import main

    assert main(["energy", "--preset", "mnist-2fc", "--rates", "0.2", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one firing rate per layer" in err[0]


@torch.no_grad()
def test_energy_report_from_a_checkpoint_uses_its_weights(tmp_path, digits):
    from stochep.cli import main
    from stochep.training.trainer import Trainer

    cfg = Config(dataset="digits", layers=[16], n_perclass=2, T_free=10, T_nudge=4, epochs=1)
    tr = Trainer(cfg, digits, progress=False)
    for p in tr.net.parameters():
        p.mul_(3.0)  # a visibly different network from the fresh initialisation
    path = tmp_path / "ck.pt"
    torch.save(tr.state_dict(), path)
    out = tmp_path / "e.json"
    assert main(["energy", "--checkpoint", str(path), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    fresh = opcount.run_energy(cfg)
    assert "checkpoint" in rep["rates_source"] and "FRESH" in fresh["rates_source"]
    assert rep["rates"] != fresh["rates"]
