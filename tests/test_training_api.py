"""The public training layer: a researcher's own loop with train_step, callbacks in fit, the
TensorBoard logger, and the progress bar in a terminal."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY, doc_blocks

from stochep import Config, Trainer
from stochep.training.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]


def test_the_own_loop_of_the_docs_trains_like_fit(digits, capsys):
    # docs/usage.md's "Your own loop", run as written
    block = doc_blocks(ROOT / "docs" / "usage.md", "python")
    loop = next(b for b in block if "train_step" in b)
    scope = {}
    exec(compile(loop, "docs/usage.md", "exec"), scope)  # noqa: S102 - the docs' own code
    tr, cfg, metrics = scope["tr"], scope["cfg"], scope["metrics"]
    acc = tr.evaluate(digits.x_test, digits.y_test)
    assert len(capsys.readouterr().out.splitlines()) == cfg.epochs
    assert set(metrics) >= {"loss", "acc", "n", "rates", "update_ratio"}
    ref = Trainer(cfg, digits, progress=False)
    ref.fit()
    # the same seeded batches, the same steps: the same weights as fit()
    for p, q in zip(tr.net.parameters(), ref.net.parameters()):
        assert torch.equal(p, q)
    assert acc == ref.evaluate(digits.x_test, digits.y_test) > 0.3  # chance: 0.1


def test_callbacks_see_every_batch_and_epoch_in_order(digits, tmp_path):
    calls = []

    class Spy(Callback):
        def on_fit_start(self, trainer):
            calls.append("start")

        def on_batch_end(self, trainer, batch, metrics):
            calls.append(("batch", trainer.epoch, batch))

        def on_epoch_end(self, trainer, row, improved):
            # the checkpoint callback ran before the user's: the epoch is on disk
            assert (tmp_path / "run" / "checkpoint_last.pt").exists()
            calls.append(("epoch", row["epoch"]))

        def on_fit_end(self, trainer, summary):
            calls.append(("end", summary["epochs"]))

    tr = Trainer(Config(**{**TINY, "epochs": 2}), digits, str(tmp_path / "run"), progress=False)
    tr.fit(callbacks=[Spy()])
    n = tr.batches_per_epoch()
    assert calls[0] == "start" and calls[-1] == ("end", 2)
    assert calls[1:n + 1] == [("batch", 0, b) for b in range(n)]
    assert calls[n + 1] == ("epoch", 1) and calls[2 * n + 2] == ("epoch", 2)


@pytest.mark.slow
def test_log_tensorboard_writes_an_events_file(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "R"
    r = subprocess.run([sys.executable, "-m", "stochep", "train", "--epochs", "2", "--log",
                        "tensorboard", "--out", str(out), "--no-progress", "--set", "layers=[32]",
                        "--set", "T_free=8", "--set", "T_nudge=3"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"epoch/val_acc", "epoch/train_loss", "firing_rate/layer1", "batch/loss"} <= set(tags)
    steps = [e.step for e in acc.Scalars("epoch/val_acc")]
    per_epoch = steps[0]
    assert len(steps) == 2 and steps == [per_epoch, 2 * per_epoch] and per_epoch > 1
    assert [e.value for e in acc.Scalars("epoch/epoch")] == [1, 2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a pty")
def test_the_progress_bar_appears_in_a_terminal(tmp_path):
    cmd = (f"{sys.executable} -m stochep train --epochs 1 --out {tmp_path / 'run'} "
           "--set layers=[32] --set T_free=8 --set T_nudge=3")
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                       check=False, env=dict(os.environ, COLUMNS="120"))
    assert r.returncode == 0, r.stdout
    assert "epoch 1/1:" in r.stdout and ("it/s" in r.stdout or "s/it" in r.stdout), r.stdout
    assert "epoch 1/1  loss" in r.stdout


def test_recording_spikes_and_states(digits):
    from stochep import record

    tr = Trainer(Config(**TINY), digits, progress=False)
    x, y = digits.x_test[:6], digits.y_test[:6]
    mf = tr.record(x)  # mean field: spikes are the rates, no randomness
    T = tr.cfg.T_free
    assert [tuple(s.shape) for s in mf.states] == [(T + 1, 6, 32), (T + 1, 6, 100)]
    assert [tuple(s.shape) for s in mf.spikes] == [(T, 6, 32), (T, 6, 100)]
    assert torch.equal(mf.spikes[0][-1], mf.rates[0][-2])  # step T was driven by rho(xi_{T-1})
    assert torch.equal(mf.states[-1][-1], tr.record(x).states[-1][-1])
    # seeded spikes: binary, reproducible, and the final state is what a free phase gives
    a, b = tr.record(x, seed=3), tr.record(x, seed=3)
    assert set(a.spikes[0].unique().tolist()) <= {0.0, 1.0}
    assert all(torch.equal(p, q) for p, q in zip(a.spikes, b.spikes))
    nudged = tr.record(x, y, seed=3, nudge=True)
    assert nudged.spikes[0].shape[0] == T + tr.cfg.T_nudge
    assert torch.equal(nudged.states[0][:T + 1], a.states[0])  # the same free phase first
    with pytest.raises(ValueError, match="NaN"):
        tr.record(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="needs the labels"):
        record(tr.net, x, 5, nudge_steps=2)


def test_eval_subset_scores_only_the_first_samples(digits):
    tr = Trainer(Config(**{**TINY, "eval_subset": 20}), digits, progress=False)
    row = tr.fit() and tr.history[-1]
    for acc in (row["val_acc"], row["test_acc"]):
        assert abs(acc * 20 - round(acc * 20)) < 1e-9  # a count out of 20
    assert row["test_acc"] == tr.evaluate(digits.x_test[:20], digits.y_test[:20])


def test_tensorboard_keeps_every_epoch_across_a_resume(digits, tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from stochep.training.callbacks import TensorBoard

    out, logs = tmp_path / "run", str(tmp_path / "run" / "tb")
    one_batch = {**TINY, "batch_size": 2000, "epochs": 2}  # one batch per epoch
    Trainer(Config(**one_batch), digits, str(out), progress=False).fit(
        callbacks=[TensorBoard(logs)])
    Trainer.from_run(str(out), epochs=3).fit(callbacks=[TensorBoard(logs)])
    acc = EventAccumulator(logs)
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("epoch/epoch")] == [(1, 1), (2, 2), (3, 3)]
