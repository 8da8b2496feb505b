"""Honest model selection: a seeded validation split chooses checkpoint_best, never the test set."""
import json

import pytest
import torch
from helpers import TINY

from stochep.data import DataError
from stochep.data.split import holdout_indices, split_validation
from stochep.training.checkpoint import load_checkpoint
from stochep.training.config import Config
from stochep.training.trainer import Trainer

FAST = {**TINY, "epochs": 3}


def test_split_is_disjoint_complete_and_seeded(digits):
    train, val = holdout_indices(1000, 0.1, seed=3)
    assert len(val) == 100 and len(train) == 900
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(1000))
    assert torch.equal(holdout_indices(1000, 0.1, seed=3)[1], val)
    assert not torch.equal(holdout_indices(1000, 0.1, seed=4)[1], val)
    part, (x_val, y_val) = split_validation(digits, 0.1, seed=0)
    assert len(part.y_train) + len(y_val) == len(digits.y_train)
    assert part.x_test is digits.x_test  # the test set is untouched
    rows = {tuple(r.tolist()) for r in part.x_train}
    assert not any(tuple(r.tolist()) in rows for r in x_val)  # no image in both
    assert split_validation(digits, 0.0, seed=0) == (digits, None)
    with pytest.raises(DataError, match="leaves none"):
        holdout_indices(3, 0.9, seed=0)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        Config(val_fraction=1.0).validate()


def test_split_is_stable_across_resume_and_independent_of_training_streams(digits, tmp_path):
    cut = Trainer(Config(**FAST, seed=2), digits, str(tmp_path), progress=False)
    cut.fit(stop_after=1)
    resumed = Trainer(Config(**FAST, seed=2), digits, str(tmp_path), progress=False)
    resumed.resume()
    assert torch.equal(cut.val[0], resumed.val[0]) and torch.equal(cut.val[1], resumed.val[1])
    assert torch.equal(cut.data.y_train, resumed.data.y_train)
    other = Trainer(Config(**FAST, seed=3), digits, progress=False)
    assert not torch.equal(other.val[1], cut.val[1])


def test_checkpoint_best_follows_validation_not_test_accuracy(digits, tmp_path, monkeypatch):
    # epoch: (val, test) -- the test set would pick epoch 3, validation picks epoch 2
    table = {1: (0.5, 0.9), 2: (0.8, 0.1), 3: (0.6, 0.95)}

    def fake_evaluate(self, x, y, split="val", batch_size=1000):
        val, test = table[self.epoch + 1]
        return test if y is self.data.y_test else val

    monkeypatch.setattr(Trainer, "_evaluate_own", fake_evaluate)
    out = tmp_path / "run"
    summary = Trainer(Config(**FAST), digits, str(out), progress=False).fit()
    assert summary["best_val_accuracy"] == 0.8 and summary["test_accuracy_at_best_val"] == 0.1
    assert summary["test_accuracy"] == 0.95 and summary["best_epoch"] == 2
    best = load_checkpoint(str(out / "checkpoint_best.pt"))
    assert best["epoch"] == 2 and best["best_val_acc"] == 0.8
    assert best["test_acc_at_best_val"] == 0.1
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_acc"] for r in lines] == [0.5, 0.8, 0.6]
    assert json.loads((out / "summary.json").read_text()) == summary


def test_without_validation_the_best_checkpoint_is_the_last_epoch(digits, tmp_path):
    out = tmp_path / "run"
    tr = Trainer(Config(**{**FAST, "epochs": 2}, val_fraction=0.0), digits, str(out), progress=False)
    summary = tr.fit()
    assert tr.val is None and len(tr.data.y_train) == len(digits.y_train)
    assert summary["best_val_accuracy"] is None and summary["best_epoch"] == 2
    assert summary["test_accuracy_at_best_val"] == summary["test_accuracy"]
    assert load_checkpoint(str(out / "checkpoint_best.pt"))["epoch"] == 2


def test_eval_test_best_scores_the_test_set_only_where_the_summary_reads_it(digits, tmp_path,
                                                                           monkeypatch):
    # epoch: validation accuracy -- new bests at epochs 1 and 3, epoch 4 is the last
    vals = {1: 0.5, 2: 0.4, 3: 0.7, 4: 0.6}
    scored = []

    def fake_evaluate(self, x, y, split="val", batch_size=1000):
        if y is self.data.y_test:
            scored.append(self.epoch + 1)
            return 0.1 * (self.epoch + 1)
        return vals[self.epoch + 1]

    monkeypatch.setattr(Trainer, "_evaluate_own", fake_evaluate)
    out = tmp_path / "run"
    summary = Trainer(Config(**{**FAST, "epochs": 4}, eval_test="best"), digits, str(out),
                      progress=False).fit()
    assert scored == [1, 3, 4]
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_acc"] and round(r["test_acc"], 6) for r in lines] == [0.1, None, 0.3, 0.4]
    assert summary["best_epoch"] == 3 and summary["test_accuracy_at_best_val"] == pytest.approx(0.3)
    assert summary["test_accuracy"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="eval_test"):
        Config(eval_test="never").validate()


def test_readout_average_reads_the_mean_output_state_of_the_free_phase(digits):
    """``readout_average = k``: evaluation predicts from the output state averaged over the free
    phase's last k steps, drawing the same evaluation spikes; k = 1 is the final state."""
    from stochep.engine.rng import SpikeRNG
    from stochep.training.trainer import EVAL_SEED_OFFSET
    x, y = digits.x_test[:200], digits.y_test[:200]

    def by_hand(tr, k):
        net, states = tr.net, []
        rng = SpikeRNG(tr.cfg.seed + EVAL_SEED_OFFSET)
        start = net.zero_states(len(x))
        for _ in range(tr.cfg.T_free):  # one step at a time, keeping every output state
            start = tr.dynamics.relax(net, tr.inputs(x), start, 1, rng).final
            states.append(start[-1])
        return net.predict(torch.stack(states[-k:]).mean(0))

    for k in (1, 6):
        tr = Trainer(Config(**FAST, readout_average=k), digits, progress=False)
        tr.fit(stop_after=1)
        assert tr.evaluate(x, y) == (by_hand(tr, k) == y).sum().item() / len(y)
    assert not torch.equal(by_hand(tr, 6), by_hand(tr, 1))  # the two readouts differ here
    with pytest.raises(ValueError, match="readout_average"):
        Config(readout_average=0).validate()
