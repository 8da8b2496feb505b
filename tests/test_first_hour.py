"""A new user's first hour, as they act: the Python API (train, evaluate, their own data), the
CLI (a short run, a device, a typo, resume beyond the end, another folder), progress in a log
file, pictures, and one writer per run directory."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY, TINY_ARGS, assert_one_line_error

import stochep
from stochep import Config, Dataset, Trainer, load_preset
from stochep.cli import main
from stochep.tools import plot as plot_tool

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, check=False, **kw)


one_line = assert_one_line_error


# ---- Python API ---------------------------------------------------------------------------
def test_the_public_names_import_and_load_preset_returns_a_config():
    cfg = load_preset("mnist-1fc")
    assert isinstance(cfg, Config) and cfg.paper["accuracy"] == 97.46
    for name in ("Config", "Trainer", "load_preset", "Dataset"):
        assert name in stochep.__all__


def test_net_of_x_gives_class_scores_as_evaluation_does(digits, tmp_path):
    tr = Trainer(Config(**TINY), digits, str(tmp_path / "run"), progress=False)
    tr.fit()
    x, y = digits.x_test[:200], digits.y_test[:200]
    scores = tr.net(x)
    assert scores.shape == (200, 10)
    assert torch.equal(scores.argmax(1), tr.predict(x))
    assert tr.evaluate(x, y) == pytest.approx((scores.argmax(1) == y).float().mean().item())
    # a finished run comes back from its folder and scores any tensors the same way
    again = Trainer.from_run(str(tmp_path / "run"), which="best")
    assert again.evaluate(x, y) == pytest.approx(tr.evaluate(x, y))


@pytest.mark.slow
def test_the_readme_python_example_matches_the_cli_first_epoch(tmp_path, monkeypatch):
    """The README's quick-start block, run as written, uses the CLI's recipe: its first epoch
    is the CLI's first epoch."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "Trainer" in block and "fit()" in block
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    res = run("train", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "cli"))
    assert res.returncode == 0, res.stderr
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())["test_accuracy"]
    assert abs(scope["summary"]["test_accuracy"] - cli) < 0.03


def test_own_tensors_convert_and_record_their_provenance(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 20), generator=g, dtype=torch.uint8)
    y = (x[:, 0] > 127).to(torch.int32)  # int32 labels, uint8 inputs
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255"):
        Dataset.from_tensors(x, y, x, y)
    xf = (x.double() / 255)  # float64 inputs are converted
    data = Dataset.from_tensors(xf[:240], y[:240], xf[240:], y[240:], name="mine")
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    out = tmp_path / "run"
    tr = Trainer(Config(**{**TINY, "epochs": 2}), data, str(out), progress=False)
    tr.fit(stop_after=1)
    saved = Config.from_dict(json.loads(json.dumps(
        __import__("yaml").safe_load((out / "config.yaml").read_text()))))
    assert saved.dataset == "mine"
    # resume from Python with the same tensors; other tensors, or none, are one clear line
    again = Trainer.from_run(str(out), data=data)
    assert again.epoch == 1 and again.fit()["epochs"] == 2
    # without the tensors it still scores any inputs of its shape, the same as with them
    alone = Trainer.from_run(str(out), which="best")
    with_data = Trainer.from_run(str(out), which="best", data=data)
    assert alone.eval_only and alone.evaluate(xf[240:], y[240:]) == \
        with_data.evaluate(xf[240:], y[240:])
    with pytest.raises(ValueError, match="your own dataset 'mine'.*pass the same tensors"):
        alone.fit()
    # other tensors score too, but do not continue the run
    other = Dataset.from_tensors(xf[:240].flip(0), y[:240], xf[240:], y[240:], name="mine")
    mixed = Trainer.from_run(str(out), data=other)
    assert 0 <= mixed.evaluate(xf[:60], y[:60]) <= 1
    with pytest.raises(Exception, match="other data"):
        mixed.fit()


@pytest.mark.parametrize("args,match", [
    ((torch.rand(4, 3), torch.tensor([0, 1, 2])), "4 samples but y_train has 3"),
    ((torch.rand(4, 3), torch.tensor([0.5, 1, 0, 1])), "integer class indices"),
    ((torch.rand(4, 3), torch.tensor([0, -1, 0, 1])), ">= 0"),
    ((torch.rand(4), torch.tensor([0, 1, 0, 1])), r"\[N, \*sample_shape\]"),
    ((torch.full((4, 3), float("nan")), torch.tensor([0, 1, 0, 1])), "NaN"),
])
def test_bad_tensors_are_one_clear_error(args, match):
    with pytest.raises(ValueError, match=match):
        Dataset.from_tensors(*args, torch.rand(2, 3), torch.tensor([0, 1]))


# ---- command line ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_short_run_on_a_subset(tmp_path):
    res = run("train", "--epochs", "1", "--train-subset", "200", "--val-fraction", "0.25",
              "--no-progress", "--out", str(tmp_path / "r"), *TINY_ARGS)
    assert res.returncode == 0, res.stderr
    cfg = Config.from_dict(__import__("yaml").safe_load((tmp_path / "r" / "config.yaml").read_text()))
    assert (cfg.train_subset, cfg.val_fraction) == (200, 0.25)


def test_loader_option_errors_are_one_line(tmp_path):
    one_line(run("train", "--set", "data_options={n_train: 2000}"),
             "unknown data option 'n_train'", "digits", "test_fraction")


def test_a_typo_in_a_key_suggests_the_closest():
    one_line(run("train", "--set", "bta=0.2"), "'bta'", "did you mean 'beta'")


def test_device_flag():
    if not torch.cuda.is_available():
        one_line(run("train", "--device", "cuda"), "device 'cuda' is not available")
    one_line(run("train", "--device", "tpu"), "device must be 'cpu', 'cuda' or 'cuda:N'")


@pytest.mark.slow
def test_eval_works_from_another_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    digits_dir = tmp_path / "a" / "data"
    res = run("train", "--epochs", "1", "--no-progress", "--out", "run", "--data-dir",
              "data", *TINY_ARGS, cwd=tmp_path / "a")
    assert res.returncode == 0, res.stderr
    saved = (tmp_path / "a" / "run" / "config.yaml").read_text()
    assert f"dir: {digits_dir}" in saved  # stored absolute
    res = run("eval", "--checkpoint", str(tmp_path / "a" / "run" / "checkpoint_best.pt"),
              cwd=tmp_path / "b")
    assert res.returncode == 0 and "test_accuracy=" in res.stdout, res.stderr


@pytest.mark.slow
def test_every_help_text_is_complete():
    res = run("--help")
    assert res.returncode == 0
    for command in ("train", "eval", "plot", "presets", "gradcheck", "diagnose", "memory",
                    "energy", "analyze", "sweep", "reproduce", "convert-checkpoint"):
        assert command in res.stdout
        sub = run(command, "--help")
        assert sub.returncode == 0 and "usage: stochep" in sub.stdout, command
    assert "Equilibrium Propagation." in res.stdout.replace("\n", " ")


@pytest.mark.slow
def test_resume_beyond_the_end_trains_on_and_below_it_is_one_line(tmp_path):
    out = str(tmp_path / "r")
    assert run("train", "--epochs", "2", "--no-progress", "--out", out, *TINY_ARGS).returncode == 0
    one_line(run("train", "--resume", "--out", out, "--epochs", "1"),
             "already trained 2 epochs", "at least 2")
    res = run("train", "--resume", "--out", out, "--no-progress")
    assert res.returncode == 0 and "has finished its 2 epochs" in res.stderr
    res = run("train", "--resume", "--out", out, "--epochs", "3", "--no-progress")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # the cosine becomes the 3-epoch one: 0.25 of the base rate during epoch 3, 0 at its end
    assert rows[2]["lr"] == pytest.approx(0.0, abs=1e-12)
    ck = torch.load(os.path.join(out, "checkpoint_last.pt"), weights_only=True)
    assert ck["scheduler"]["T_max"] == 3


@pytest.mark.slow
def test_progress_in_a_log_file_is_one_line_per_epoch(tmp_path):
    res = run("train", "--epochs", "2", "--out", str(tmp_path / "r"), *TINY_ARGS)  # stderr: a pipe
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr
    epochs = [line for line in res.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for key in ("loss", "train_acc", "val_acc", "rates", "elapsed"):
        assert key in epochs[0]


@pytest.mark.slow
def test_plot_draws_several_runs_and_says_so_without_matplotlib(tmp_path, monkeypatch, capsys):
    for name in ("a", "b"):
        assert run("train", "--epochs", "2", "--no-progress", "--out", str(tmp_path / name),
                   "--seed", str(len(name)), *TINY_ARGS).returncode == 0
    png = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(plot_tool, "pyplot", lambda: None)
    assert main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "none.png")]) == 2
    out, err = capsys.readouterr()
    assert "matplotlib is not installed" in err and len(err.strip().splitlines()) == 1
    assert "train_acc" in out and not (tmp_path / "none.png").exists()  # the numbers, printed
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_analyze_without_matplotlib_says_so_and_writes_its_numbers(tmp_path, monkeypatch,
                                                                   capsys):
    from stochep.tools.analysis import common
    monkeypatch.setattr(common, "pyplot", lambda: None)
    paths = common.save({"x": 1}, str(tmp_path), "fig", draw=lambda plt: None)
    assert paths == [str(tmp_path / "fig.json")]
    assert "matplotlib is not installed" in capsys.readouterr().err


def test_resume_holds_the_lock_before_it_reads_the_checkpoint(tmp_path, monkeypatch):
    """A run that ends between a second process's read of its checkpoint and that process's
    lock would be trained over from the stale state: the CLI locks first, then reads."""
    from stochep.training import trainer as trainer_mod
    from stochep.training.rundir import RunDirectoryBusy, RunLock

    out = str(tmp_path / "r")
    assert main(["train", "--epochs", "1", "--no-progress", "--out", out, *TINY_ARGS]) == 0
    read, held = trainer_mod.load_checkpoint, []

    def load_and_probe(path):
        try:  # flock: a second open file conflicts, in this process too
            with RunLock(out):
                held.append(False)
        except RunDirectoryBusy:
            held.append(True)
        return read(path)

    monkeypatch.setattr(trainer_mod, "load_checkpoint", load_and_probe)
    assert main(["train", "--resume", "--out", out, "--epochs", "2", "--no-progress"]) == 0
    assert held == [True]


@pytest.mark.slow
def test_one_writer_per_run_directory_and_sigkill_releases_the_lock(tmp_path):
    out = str(tmp_path / "r")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # more epochs than it can train before the test kills it: the race is the lock's alone
    first = subprocess.Popen([sys.executable, "-m", "stochep", "train", "--epochs", "100000",
                              "--no-progress", "--out", out, *TINY_ARGS], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(out, "checkpoint_last.pt")):
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.2)
        one_line(run("train", "--resume", "--out", out), "in use by process", str(first.pid))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done = torch.load(os.path.join(out, "checkpoint_last.pt"), weights_only=True)["epoch"]
    res = run("train", "--resume", "--out", out, "--epochs", str(done + 1), "--no-progress")
    assert res.returncode == 0, res.stderr  # the killed process held no lock any more
