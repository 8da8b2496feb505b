"""Run directories, atomic checkpoints, exact resume, and divergence handling."""
import json

import pytest
import torch

from stochep.checkpoint import CheckpointError, load_checkpoint, save_atomic
from stochep.config import Config
from stochep.train import Trainer, TrainingDiverged

FAST = dict(epochs=3, T_free=8, T_nudge=4, layers=[32], batch_size=64)


def _weights(tr):
    return [p.detach().clone() for p in tr.net.parameters()]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(digits, tmp_path):
    full = Trainer(Config(**FAST), digits, str(tmp_path / "full"), progress=False)
    full.fit()
    cut = Trainer(Config(**FAST), digits, str(tmp_path / "cut"), progress=False)
    cut.fit(stop_after=1)  # "killed" after epoch 1
    resumed = Trainer(Config(**FAST), digits, str(tmp_path / "cut"), progress=False)
    resumed.resume()
    assert resumed.epoch == 1
    resumed.fit()
    for a, b in zip(_weights(full), _weights(resumed)):
        assert torch.equal(a, b)
    ha = [{k: v for k, v in r.items() if k != "time_s"} for r in full.history]
    hb = [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.history]
    assert ha == hb


def test_run_directory_holds_config_metrics_summary_and_checkpoints(digits, tmp_path):
    out = tmp_path / "run"
    Trainer(Config(**FAST, seed=5), digits, str(out), progress=False).fit()
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    for r in lines:
        assert {"epoch", "train_loss", "train_acc", "test_acc", "time_s", "firing_rate"} <= set(r)
        assert len(r["firing_rate"]) == 2 and 0 <= r["test_acc"] <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] == lines[-1]["test_acc"]
    assert summary["best_test_accuracy"] == max(r["test_acc"] for r in lines)
    assert summary["epochs"] == 3 and summary["seed"] == 5 and summary["dataset"] == "digits"
    assert summary["train_time_s"] > 0 and "preset" in summary
    cfg = Config.from_dict(__import__("yaml").safe_load((out / "config.yaml").read_text()))
    assert cfg.seed == 5 and cfg.layers == [32]
    last, best = load_checkpoint(str(out / "checkpoint_last.pt")), \
        load_checkpoint(str(out / "checkpoint_best.pt"))
    assert last["epoch"] == 3 and best["best_acc"] == summary["best_test_accuracy"]
    for key in ("model", "optimizer", "scheduler", "spike_rng", "data_gen", "sign_gen", "config"):
        assert key in last


def test_truncated_checkpoint_is_rejected_with_a_clear_error(tmp_path):
    path = tmp_path / "ck.pt"
    save_atomic({"format": "stochep-checkpoint-v1", "w": torch.randn(1000)}, str(path))
    assert load_checkpoint(str(path))["w"].shape == (1000,)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(str(path))
    (tmp_path / "other.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="damaged or not a checkpoint"):
        load_checkpoint(str(tmp_path / "other.pt"))
    torch.save({"something": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a stochep checkpoint"):
        load_checkpoint(str(tmp_path / "foreign.pt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "foreign.pt", "other.pt"]


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    out = tmp_path / "run"
    tr = Trainer(Config(**FAST), digits, str(out), progress=False)
    tr.fit(stop_after=1)
    good = load_checkpoint(str(out / "checkpoint_last.pt"))["model"]
    with torch.no_grad():
        tr.net.interactions[1].weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN/inf"):
        tr.fit()
    kept = load_checkpoint(str(out / "checkpoint_last.pt"))
    assert kept["epoch"] == 1
    for k, v in good.items():
        assert torch.equal(kept["model"][k], v) and torch.isfinite(v).all()
