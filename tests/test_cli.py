"""The command line as a user runs it: one-line errors with exit code 2, SIGKILL and resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from shared_data import shared_data

from stochep.checkpoint import load_checkpoint

FAST = ["--set", "T_free=12", "--set", "T_nudge=4", "--set", "layers=[64]",
        "--batch-size", "32", "--no-progress"]


def run(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, env=env, **kw)


def assert_one_line_error(res, *needles):
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["train", "--preset", "mnist-9fc"], ["unknown preset", "mnist-1fc"]),
    (["train", "--set", "nonsense=1"], ["unknown config key", "nonsense"]),
    (["train", "--set", "lr=fast"], ["lr must be of type float"]),
    (["train", "--set", "kappa=-1.0"], ["kappa must be a finite number > 0"]),
    (["train", "--set", "lam=1.5"], ["lam must be in (0, 1]"]),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/mnist"],
     ["/nonexistent/mnist", "--data-dir"]),
    (["train", "--resume"], ["--resume needs --out"]),
    (["eval", "--checkpoint", "/nonexistent.pt"], ["does not exist"]),
])
def test_user_errors_give_one_line_and_exit_2(args, needles):
    assert_one_line_error(run(*args), *needles)


def test_damaged_checkpoint_gives_one_line_error(tmp_path):
    bad = tmp_path / "checkpoint_last.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(run("eval", "--checkpoint", str(bad)), str(bad), "damaged")
    assert_one_line_error(run("train", "--out", str(tmp_path), "--resume"), "damaged")


def test_presets_command_lists_table_3_rows():
    res = run("presets")
    assert res.returncode == 0
    assert "mnist-1fc" in res.stdout and "mnist-2fc" in res.stdout and "97.46" in res.stdout


def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    common = ["train", "--epochs", "4", "--seed", "1", *FAST]
    assert run(*common, "--out", str(ref)).returncode == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "stochep", *common, "--out", str(cut)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    metrics = cut / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(str(cut / "checkpoint_last.pt"))["epoch"]
    assert 1 <= killed_at < 4
    res = run("train", "--out", str(cut), "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr
    a = load_checkpoint(str(ref / "checkpoint_last.pt"))
    b = load_checkpoint(str(cut / "checkpoint_last.pt"))
    assert a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k])
    lines = (cut / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3, 4]
    # a finished run directory is not overwritten by accident
    assert_one_line_error(run(*common, "--out", str(cut)), "already holds a run")


def test_eval_reports_the_accuracy_the_run_reported(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--epochs", "1", *FAST, "--out", str(out)).returncode == 0
    res = run("eval", "--checkpoint", str(out / "checkpoint_last.pt"))
    assert res.returncode == 0, res.stderr
    result = json.loads((out / "eval.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert f"test_accuracy={summary['test_accuracy']:.4f}" in res.stdout


def test_gradcheck_command_passes_and_prints_cosine_min():
    res = run("gradcheck", "--widths", "64", "32", "--T", "600")
    assert res.returncode == 0, res.stdout + res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("cosine_min=") and float(last.split("=")[1]) >= 0.99
    bad = run("gradcheck", "--widths", "64", "32", "--T", "5")  # far from settled
    assert bad.returncode == 1


def test_gradcheck_on_the_mnist_2c_preset_narrowed():
    res = run("gradcheck", "--preset", "mnist-2c", "--narrow", "8", "--data-dir",
              str(shared_data("mnist")), "--batch", "4", "--T", "400")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "interactions.1.weight" in res.stdout  # the second conv layer is checked
    assert float(res.stdout.strip().splitlines()[-1].split("=")[1]) >= 0.99


def test_every_preset_loads_and_builds():
    from stochep.models import build_network
    from stochep.presets import load_preset, preset_names

    shapes = {"mnist": (784,), "cifar10": (3, 32, 32)}
    assert {"mnist-1fc", "mnist-2fc", "mnist-2c", "cifar10-5c", "cifar10-5cp"} <= set(
        preset_names())
    for name in preset_names():
        cfg, paper = load_preset(name)
        assert cfg.validate() and "accuracy" in paper
        net = build_network(cfg, shapes[cfg.dataset], 10)
        assert net.layer_shapes[-1] == (10 * cfg.n_perclass,)
    assert load_preset("cifar10-5c")[0].layers[-1]["conv"] == 256
    assert build_network(load_preset("cifar10-5c")[0], (3, 32, 32), 10).layer_shapes[3] == (
        256, 2, 2)
