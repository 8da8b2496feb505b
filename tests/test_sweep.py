"""Seed sweeps (sweep.py): independent seeds, mean and std, skip finished, resume killed."""
import json
import os

import pytest

from stochep.cli import main
from stochep.tools.sweep import parse_seeds, seed_state
from stochep.training.config import ConfigError

TINY = ["--epochs", "1", "--set", "layers=[16]", "--set", "T_free=6", "--set", "T_nudge=2"]


def test_seed_ranges_and_lists_parse_and_bad_ones_fail_clearly():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("1,3,7-8") == [1, 3, 7, 8]
    for bad in ("4-0", "a", "1,1", "-2"):
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)


@pytest.mark.slow
def test_sweep_reports_mean_and_std_then_skips_finished_and_resumes_killed(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "--seeds", "0-1", "--jobs", "2", "--out", str(out), *TINY]) == 0
    res = json.loads((out / "sweep.json").read_text())
    accs = [res["runs"][s]["test_accuracy_at_best_val"] for s in ("0", "1")]
    assert accs[0] != accs[1]  # independent seeds
    assert res["test_accuracy_at_best_val_mean"] == pytest.approx(sum(accs) / 2)
    assert res["test_accuracy_at_best_val_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)
    assert "test_accuracy_at_best_val_mean=" in capsys.readouterr().out
    # a killed seed: its summary says fewer epochs than planned, its checkpoint is there
    first = os.path.getmtime(out / "seed0" / "checkpoint_last.pt")
    assert seed_state(str(out / "seed1"), 2) == "resume"
    assert main(["sweep", "--seeds", "0-2", "--out", str(out), *TINY]) == 0
    err = capsys.readouterr().err
    assert "seed 0: finished, skipped" in err and "seed 2: new" in err
    assert os.path.getmtime(out / "seed0" / "checkpoint_last.pt") == first
    assert json.loads((out / "sweep.json").read_text())["n_finished"] == 3
    assert main(["sweep", "--seeds", "1", "--out", str(out), *TINY[2:], "--epochs", "2"]) == 0
    assert "seed 1: resume" in capsys.readouterr().err
    assert json.loads((out / "seed1" / "summary.json").read_text())["epochs"] == 2
