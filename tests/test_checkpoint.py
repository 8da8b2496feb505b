"""Run directories, atomic checkpoints, exact resume, and divergence handling."""
import json
import math
import os
import stat

import pytest
import torch
from helpers import TINY

from stochep.training.checkpoint import CKPT_FORMAT, CheckpointError, load_checkpoint, save_atomic
from stochep.training.config import Config
from stochep.training.trainer import Trainer, TrainingDiverged

FAST = {**TINY, "epochs": 3}


def _weights(tr):
    return [p.detach().clone() for p in tr.net.parameters()]


@pytest.mark.parametrize("extra", [
    {}, {"optimizer": "adamw", "lr": 0.003, "epochs": 2}, {"momentum": 0.9, "epochs": 2},
    {"algo": "bptt", "epochs": 2}, {"ema_decay": 0.9, "epochs": 2}],
    ids=["sgd", "adamw", "sgd-momentum", "bptt", "weight-average"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(digits, tmp_path, extra):
    cfg = {**FAST, **extra}
    full = Trainer(Config(**cfg), digits, str(tmp_path / "full"), progress=False)
    full.fit()
    cut = Trainer(Config(**cfg), digits, str(tmp_path / "cut"), progress=False)
    cut.fit(stop_after=1)  # "killed" after epoch 1
    resumed = Trainer(Config(**cfg), digits, str(tmp_path / "cut"), progress=False)
    resumed.resume()
    assert resumed.epoch == 1
    if extra.get("optimizer") == "adamw" or extra.get("momentum"):
        assert resumed.opt.state_dict()["state"]  # moments / momentum buffers were restored
    resumed.fit()
    for a, b in zip(_weights(full), _weights(resumed)):
        assert torch.equal(a, b)
    if extra.get("ema_decay"):  # the evaluated average resumes too (the history compares it)
        assert resumed.ema.updates == full.ema.updates > 0
        assert all(torch.equal(a, b) for a, b in zip(full.ema.avg, resumed.ema.avg))
    for a, b in zip(full.opt.state_dict()["state"].values(),
                    resumed.opt.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    ha = [{k: v for k, v in r.items() if k != "time_s"} for r in full.history]
    hb = [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.history]
    assert ha == hb


def test_run_directory_holds_config_metrics_summary_and_checkpoints(digits, tmp_path):
    out = tmp_path / "run"
    Trainer(Config(**FAST, seed=5), digits, str(out), progress=False).fit()
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    for r in lines:
        assert {"epoch", "train_loss", "train_acc", "val_acc", "test_acc", "time_s",
                "firing_rate"} <= set(r)
        assert len(r["firing_rate"]) == 2 and 0 <= r["test_acc"] <= 1 and 0 <= r["val_acc"] <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] == lines[-1]["test_acc"]
    best = max(lines, key=lambda r: r["val_acc"])  # first epoch of the highest val accuracy
    assert summary["best_val_accuracy"] == best["val_acc"]
    assert summary["test_accuracy_at_best_val"] == best["test_acc"]
    assert "best_test_accuracy" not in summary
    assert summary["epochs"] == 3 and summary["seed"] == 5 and summary["dataset"] == "digits"
    assert summary["train_time_s"] > 0 and "preset" in summary
    cfg = Config.from_dict(__import__("yaml").safe_load((out / "config.yaml").read_text()))
    assert cfg.seed == 5 and cfg.layers == [32]
    last, best = load_checkpoint(str(out / "checkpoint_last.pt")), \
        load_checkpoint(str(out / "checkpoint_best.pt"))
    assert last["epoch"] == 3 and best["best_val_acc"] == summary["best_val_accuracy"]
    assert best["epoch"] == best["best_epoch"] == summary["best_epoch"]
    assert best["test_acc_at_best_val"] == summary["test_accuracy_at_best_val"]
    for key in ("model", "optimizer", "scheduler", "spike_rng", "data_gen", "sign_gen", "config"):
        assert key in last
    assert last["format"] == CKPT_FORMAT == "stochep-checkpoint-v2"


def test_checkpoint_holds_only_tensors_and_plain_data(digits, tmp_path):
    tr = Trainer(Config(**FAST, optimizer="adamw"), digits, str(tmp_path), progress=False)
    tr.fit(stop_after=1)
    ck = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)  # raises otherwise
    assert isinstance(ck["data_gen"], torch.Tensor) and isinstance(ck["config"], dict)
    assert isinstance(ck["spike_rng"]["generator"], torch.Tensor)
    with pytest.raises(TypeError, match="plain data"):
        save_atomic({"format": CKPT_FORMAT, "bad": object()}, str(tmp_path / "x.pt"))
    assert not (tmp_path / "x.pt").exists()


def test_save_fsyncs_the_file_and_then_its_folder(tmp_path, monkeypatch):
    from stochep.training.checkpoint import write_atomic_text

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_mode), real(fd)))
    save_atomic({"w": torch.zeros(3)}, str(tmp_path / "ck.pt"))
    write_atomic_text(str(tmp_path / "m.txt"), "x")
    kinds = ["dir" if stat.S_ISDIR(m) else "file" for m in synced]
    assert kinds == ["file", "dir", "file", "dir"]


def test_truncated_checkpoint_is_rejected_with_a_clear_error(digits, tmp_path):
    path = tmp_path / "ck.pt"
    save_atomic(Trainer(Config(**FAST), digits, progress=False).state_dict(), str(path))
    assert load_checkpoint(str(path))["epoch"] == 0
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


def test_divergence_on_the_last_batch_keeps_the_previous_epochs_files(digits, tmp_path):
    out = tmp_path / "run"
    tr = Trainer(Config(**FAST), digits, str(out), progress=False)
    tr.fit(stop_after=1)
    names = ["checkpoint_last.pt", "checkpoint_best.pt", "metrics.jsonl", "summary.json"]
    before = {n: (out / n).read_bytes() for n in names}
    steps_per_epoch = math.ceil(len(tr.data.y_train) / FAST["batch_size"])
    real_step, calls = tr.opt.step, []

    def step_then_blow_up_on_the_last_batch():
        real_step()
        calls.append(1)
        if len(calls) == steps_per_epoch:  # the last batch of epoch 2
            with torch.no_grad():
                tr.net.interactions[0].weight[0, 0] = float("inf")

    tr.opt.step = step_then_blow_up_on_the_last_batch
    with pytest.raises(TrainingDiverged, match="NaN/inf.*epoch 2"):
        tr.fit()
    assert len(calls) == steps_per_epoch
    assert {n: (out / n).read_bytes() for n in names} == before
