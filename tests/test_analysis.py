"""`stochep analyze`: every analysis runs on a tiny network and writes its files and keys."""
import json
import os

import pytest
import torch

from stochep.cli import main

TINY = ["--set", "layers=[16]", "--set", "T_free=8", "--set", "T_nudge=3",
        "--set", "batch_size=50", "--train-subset", "200", "--samples", "6"]


def _run(tmp_path, name):
    out = str(tmp_path / name)
    assert main(["analyze", name, "--out", out] + TINY) == 0
    with open(os.path.join(out, f"{name}.json")) as f:
        result = json.load(f)
    assert os.path.getsize(os.path.join(out, f"{name}.png")) > 1000  # matplotlib: stochep[plot]
    return out, result


def test_stability_writes_trajectories_and_one_number_per_model(tmp_path):
    out, r = _run(tmp_path, "stability")
    assert set(r["models"]) == {"hard-sigmoid", "lif", "predictive-coding", "sigma-delta"}
    for m in r["models"].values():
        assert 0 <= m["test_accuracy"] <= 1
        assert set(m["tail_mean_abs_change"]) == {"free", "nudge", "both"}
        tail = m["tail_mean_abs_change"]
        assert tail["both"] == pytest.approx((tail["free"] + tail["nudge"]) / 2)
    # the stochastic neuron's spikes keep its states moving at the end of each phase
    assert min(r["models"]["hard-sigmoid"]["tail_mean_abs_change"].values()) > 0
    traj = torch.load(os.path.join(out, "stability_trajectories.pt"), weights_only=True)
    assert traj["lif"].shape == (8 + 3 + 1, 6, 16)  # the whole trajectory, start included


def test_firing_density_per_kappa_and_a_raster(tmp_path):
    _, r = _run(tmp_path, "firing")
    assert list(r["kappa"]) == ["0.5", "1.0", "2.0", "4.0"]
    for k in r["kappa"].values():
        assert 0 <= k["density"] <= 1 and len(k["raster"]) == 8 + 3
        assert all(0 <= n < 16 for row in k["raster"] for n in row)


def test_error_signal_grows_with_the_number_of_outputs(tmp_path):
    _, r = _run(tmp_path, "error-signal")
    rows = r["n_perclass"]
    assert [rows[k]["outputs"] for k in ("1", "10", "100")] == [10, 100, 1000]
    assert rows["1"]["magnitude"] < rows["10"]["magnitude"] < rows["100"]["magnitude"]
    assert all(0 <= v["nonzero_percent"] <= 100 for v in rows.values())


def test_mean_field_monte_carlo_energy_matches_the_deterministic_energy(tmp_path):
    _, r = _run(tmp_path, "mean-field")
    assert len(r["steps"]) == 8
    assert r["max_abs_z"] < 5  # Theorem 3.1: equal in expectation (200 draws per step)
    assert all(s["stderr"] > 0 for s in r["steps"])


def test_analyze_rejects_bad_arguments(capsys):
    assert main(["analyze", "stability", "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["analyze", "no-such-analysis"])


def test_network_at_init_is_the_trainers_network_before_its_first_step():
    """The analyses' network without a Trainer: the same seeded, calibrated weights, the same
    dynamics and spike stream a Trainer of the same config starts with."""
    from stochep.tools.analysis.common import Setup, network_at_init
    from stochep.training.trainer import Trainer
    setup = Setup.build(None, None, ["layers=[24, 16]", "T_free=8", "update=async",
                                     "calibrate_iters=5"])
    net, dynamics, rng = network_at_init(setup)
    tr = Trainer(setup.config(), setup.data, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), tr.net.parameters()))
    assert net.n_perclass == tr.net.n_perclass and dynamics.update == tr.dynamics.update == "async"
    assert torch.equal(rng.uniform(50), tr.streams.spike.uniform(50))
    wide, _, _ = network_at_init(setup, n_perclass=7)
    assert wide.n_perclass == 7 and wide.interactions[-1].weight.shape[0] == 10 * 7
