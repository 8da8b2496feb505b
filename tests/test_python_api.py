"""The Python API is as safe as the CLI: a finished run is never trained over unasked, bad
inputs to evaluate/predict/scores/net(x) and to Config(...) are one ValueError line, a run on
your own tensors reloads without them, a full disk is one line and keeps the last checkpoint."""
import errno
import hashlib

import pytest
import torch
from helpers import TINY

from stochep import Config, Dataset, Trainer
from stochep.cli import main
from stochep.training.rundir import RunExists


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("runs") / "done"
    tr = Trainer(Config(**TINY), digits, str(out), progress=False)
    tr.fit()
    return out, tr


def test_a_finished_run_is_not_trained_over_from_python(finished, digits):
    out, _ = finished
    before = digest(out / "checkpoint_last.pt"), (out / "summary.json").read_text()
    with pytest.raises(RunExists, match="already holds a run.*from_run.*overwrite=True"):
        Trainer(Config(**{**TINY, "seed": 2}), digits, str(out), progress=False).fit()
    assert (digest(out / "checkpoint_last.pt"), (out / "summary.json").read_text()) == before


def test_overwrite_true_replaces_it_and_resuming_continues_it(tmp_path, digits):
    out = tmp_path / "run"
    Trainer(Config(**TINY), digits, str(out), progress=False).fit()
    first = digest(out / "checkpoint_last.pt")
    Trainer(Config(**{**TINY, "seed": 3}), digits, str(out), progress=False,
            overwrite=True).fit()
    assert digest(out / "checkpoint_last.pt") != first
    assert Trainer.from_run(str(out), epochs=2).fit()["epochs"] == 2


@pytest.mark.parametrize("make,match", [
    (lambda x: (x * 255).to(torch.uint8), r"\[0, 1\].*divide by 255"),
    (lambda x: torch.full_like(x, float("nan")), "NaN"),
    (lambda x: x.reshape(len(x), 8, 8), r"x must be \[N, 64\]"),
    (lambda x: x[:0], "empty"),
])
def test_bad_inputs_to_every_scoring_call_are_one_error(finished, digits, make, match):
    _, tr = finished
    x, y = make(digits.x_test[:50]), digits.y_test[:50]
    for call in (lambda: tr.evaluate(x, y), lambda: tr.predict(x), lambda: tr.scores(x),
                 lambda: tr.net(x)):
        with pytest.raises(ValueError, match=match):
            call()


def test_labels_out_of_range_and_predict_on_scores_are_named(finished, digits):
    _, tr = finished
    x = digits.x_test[:50]
    with pytest.raises(ValueError, match=r"class indices in 0..9.*found 12"):
        tr.evaluate(x, torch.full((50,), 12))
    with pytest.raises(ValueError, match=r"NaN"):
        tr.evaluate(x, torch.full((50,), float("nan")))
    with pytest.raises(ValueError, match=r"look like class scores.*argmax\(1\)"):
        tr.net.predict(tr.net(x))


@pytest.mark.parametrize("kw,match", [
    ({"epoch": 3}, "unknown config key.*'epoch'.*did you mean 'epochs'"),
    ({"beta": -1}, "beta must be a finite number > 0"),
    ({"dataset": "mnsit"}, "unknown dataset 'mnsit'.*did you mean 'mnist'"),
    ({"lr": "fast"}, "lr must be of type float"),
    ({"lam": 1.5}, r"lam must be in \(0, 1\]"),
])
def test_config_checks_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        Config(**kw)


def test_own_tensors_with_clear_messages_for_common_mistakes(digits):
    x, y = digits.x_train[:200], digits.y_train[:200]
    shifted = y % 3 + 1  # labels 1..3
    with pytest.raises(ValueError, match="start at class 0.*subtract 1"):
        Dataset.from_tensors(x, shifted, x, shifted)
    data = Dataset.from_tensors(x, shifted, x, shifted, n_classes=4)  # class 0 real but absent
    assert data.n_classes == 4
    img = x.reshape(-1, 8, 8, 1).repeat(1, 4, 4, 1)  # [N, 32, 32, 1]: channels-last
    with pytest.raises(ValueError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
        Dataset.from_tensors(img, y, img, y)
    with pytest.raises(ValueError, match="NaN"):
        Dataset.from_tensors(x, y.float().masked_fill(y == 0, float("nan")), x, y)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--no-progress",
                 "--set", "layers=[32]", "--set", "T_free=8", "--set", "T_nudge=3"]) == 0
    kept = digest(out / "checkpoint_last.pt")
    capsys.readouterr()

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", no_space)
    code = main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2 and "Traceback" not in "".join(err), err  # dir + error
    assert "No space left on device" in err[-1] and "previous one is kept" in err[-1]
    assert digest(out / "checkpoint_last.pt") == kept
    assert not list(out.glob(".tmp-*"))


def test_net_of_x_scores_like_the_trainer_on_any_net(digits, tmp_path):
    # a weight average, and a conv net fed the data's flat 784 images: net(x) == trainer.scores
    tr = Trainer(Config(**{**TINY, "ema_decay": 0.5}), digits, progress=False)
    tr.fit()
    x = digits.x_test[:40]
    assert torch.equal(tr.net(x), tr.scores(x))
    g = torch.Generator().manual_seed(0)
    flat = torch.rand(64, 784, generator=g)
    y = torch.arange(64) % 10
    conv = Trainer(Config(layers=[{"conv": 2, "kernel": 3, "padding": 1, "pool": 2}], T_free=4,
                          T_nudge=2, epochs=1, batch_size=32, calibrate_rate=0.0),
                   Dataset.from_tensors(flat, y, flat, y), progress=False)
    assert torch.equal(conv.net(flat[:5]), conv.scores(flat[:5]))


def test_training_on_from_the_best_checkpoint_is_refused(digits, tmp_path):
    out = tmp_path / "run"
    Trainer(Config(**{**TINY, "epochs": 2}), digits, str(out), progress=False).fit()
    last = digest(out / "checkpoint_last.pt")
    best = Trainer.from_run(str(out), which="best", epochs=3)
    with pytest.raises(RunExists, match="already holds a run"):
        best.fit()
    assert digest(out / "checkpoint_last.pt") == last
    assert Trainer.from_run(str(out), epochs=3).fit()["epochs"] == 3  # the last one continues


def test_config_takes_old_keys_and_checks_plugins():
    assert Config(algo="bptt", bptt_truncate=3).rules["bptt"]["truncate"] == 3  # as from_dict
    with pytest.raises(ValueError, match="plugins must be a list of module names"):
        Config(plugins="my_parts")


def test_eval_on_another_dataset_reads_only_that_one(digits, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    Trainer(Config(**TINY), digits, str(out), progress=False).fit()

    def no_data(*a, **k):
        raise AssertionError("the run's own dataset was loaded")
    monkeypatch.setattr(Config, "load_data", no_data)
    assert main(["eval", "--checkpoint", str(out / "checkpoint_best.pt"), "--dataset",
                 "digits"]) == 0
    assert "test_accuracy=" in capsys.readouterr().out
