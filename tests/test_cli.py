"""The command line as a user runs it: one-line errors with exit code 2, SIGKILL and resume."""
import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import torch
from helpers import assert_one_line_error
from shared_data import needs_data

from stochep.training.checkpoint import load_checkpoint

FAST = ["--set", "T_free=12", "--set", "T_nudge=4", "--set", "layers=[64]",
        "--batch-size", "32", "--no-progress"]


def run(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, env=env, **kw)


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_eval_reports_the_accuracy_the_run_reported(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--epochs", "1", *FAST, "--out", str(out)).returncode == 0
    res = run("eval", "--checkpoint", str(out / "checkpoint_last.pt"))
    assert res.returncode == 0, res.stderr
    result = json.loads((out / "eval.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert f"test_accuracy={summary['test_accuracy']:.4f}" in res.stdout
    # --set changes the scoring: an averaged readout, recorded in the JSON; a bad value fails
    res = run("eval", "--checkpoint", str(out / "checkpoint_last.pt"), "--set",
              "readout_average=5", "--json", str(tmp_path / "avg.json"))
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "avg.json").read_text())["overrides"] == ["readout_average=5"]
    assert_one_line_error(run("eval", "--checkpoint", str(out / "checkpoint_last.pt"), "--set",
                              "readout_average=0"), "readout_average")


@pytest.mark.slow
def test_gradcheck_command_passes_and_prints_cosine_min():
    res = run("gradcheck", "--widths", "64", "32", "--T", "600")
    assert res.returncode == 0, res.stdout + res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("cosine_min=") and float(last.split("=")[1]) >= 0.99
    bad = run("gradcheck", "--widths", "64", "32", "--T", "5")  # far from settled
    assert bad.returncode == 1


def test_gradcheck_on_the_mnist_2c_preset_narrowed():
    res = run("gradcheck", "--preset", "mnist-2c", "--narrow", "8", "--data-dir",
              str(needs_data("mnist")), "--batch", "4", "--T", "400")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "interactions.1.weight" in res.stdout  # the second conv layer is checked
    assert float(res.stdout.strip().splitlines()[-1].split("=")[1]) >= 0.99


def test_every_preset_loads_and_builds():
    from stochep.data import dataset_shape
    from stochep.training.models import build_network
    from stochep.training.presets import load_preset, preset_names

    assert {"mnist-1fc", "mnist-2fc", "mnist-2c", "cifar10-5c", "cifar10-5cp",
            "imdb-1ha1fc"} <= set(preset_names())
    for name in preset_names():
        cfg = load_preset(name)
        paper = cfg.paper
        assert cfg.validate() and "accuracy" in paper
        shape, n_classes = dataset_shape(cfg.dataset)
        net = build_network(cfg, shape, n_classes)
        assert net.layer_shapes[-1] == (n_classes * cfg.n_perclass,)
    assert load_preset("cifar10-5c").layers[-1]["conv"] == 256
    assert build_network(load_preset("cifar10-5c"), (3, 32, 32), 10).layer_shapes[3] == (
        256, 2, 2)


# ---- in-process: every user input fails in one line, checkpoints never run code -------------
def main_error(capsys, argv, code=2):
    """Run ``stochep.cli.main(argv)``; assert the exit code and one stderr line; return it."""
    from stochep.cli import main

    assert main(argv) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.fixture
def config_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("lr: [0.1\n")
    (tmp_path / "list.yaml").write_text("- lr\n- 0.1\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00lr")
    return tmp_path


@pytest.mark.parametrize("argv,needle", [
    (["train", "--set", "layers=[64"], "--set layers: '[64' is not a valid YAML value"),
    (["train", "--set", "lr={"], "--set lr:"),
    (["train", "--config", "{d}/missing.yaml"], "cannot read config"),
    (["train", "--config", "{d}/bad.yaml"], "is not valid YAML at line"),
    (["train", "--config", "{d}/list.yaml"], "must be a mapping"),
    (["train", "--config", "{d}/binary.yaml"], "not a UTF-8 text file"),
    (["train", "--config", "{d}"], "cannot read config"),
    (["train", "--set", "device=cuda"], "device 'cuda' is not available"),
    (["train", "--set", "device=tpu9"], "device must be"),
    (["train", "--set", "val_fraction=1.0"], "val_fraction must be in [0, 1)"),
])
def test_malformed_inputs_give_one_line_and_exit_2(capsys, monkeypatch, config_files, argv,
                                                   needle):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = [a.replace("{d}", str(config_files)) for a in argv]
    assert needle in main_error(capsys, argv)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _craft(path, marker, **fields):
    torch.save({"format": "stochep-checkpoint-v2", "model": _RunsCode(marker), **fields}, path)


def test_a_crafted_checkpoint_never_runs_code(tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    _craft(evil, marker)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _craft(run_dir / "checkpoint_last.pt", marker)
    for argv in (["eval", "--checkpoint", str(evil)],
                 ["train", "--out", str(run_dir), "--resume", "--no-progress"],
                 ["energy", "--checkpoint", str(evil)],
                 ["convert-checkpoint", str(evil), str(tmp_path / "new.pt")]):
        line = main_error(capsys, argv)
        assert "refused" in line or "--trust" in line, line
        assert not marker.exists(), argv
    assert "posix.system" in main_error(capsys, ["eval", "--checkpoint", str(evil)])


@pytest.fixture(scope="module")
def trained_path(tmp_path_factory):
    """checkpoint_last.pt of a one-epoch run; load it afresh in each test."""
    from stochep.cli import main

    out = tmp_path_factory.mktemp("trained")
    assert main(["train", "--epochs", "1", *FAST, "--out", str(out)]) == 0
    return out / "checkpoint_last.pt"


@pytest.mark.parametrize("change,needle", [
    (lambda ck: ck.pop("config"), "no 'config' field"),
    (lambda ck: ck.update(config="lr: 1"), "field 'config' is a str, expected dict"),
    (lambda ck: ck.update(model=[1.0]), "field 'model' is a list"),
    (lambda ck: ck.update(epoch=True), "field 'epoch' is a bool"),
    (lambda ck: ck["model"].update({"interactions.0.weight": 1.0}), "is not a tensor"),
    (lambda ck: ck["config"].update(lr="fast"), "invalid config (lr must be of type float"),
    (lambda ck: ck["config"].update(nonsense=1), "unknown config key(s): 'nonsense'"),
    (lambda ck: ck.pop("spike_rng"), "no 'spike_rng' field"),
    (lambda ck: ck["model"].pop("interactions.0.weight"), "does not fit the network"),
    (lambda ck: ck.update(format="stochep-checkpoint-v9"), "this stochep reads"),
])
def test_checkpoint_with_missing_or_mistyped_fields_gives_one_line(tmp_path, capsys, change,
                                                                    needle, trained_path):
    ck = load_checkpoint(str(trained_path))
    change(ck)
    path = tmp_path / "broken.pt"
    torch.save(ck, path)
    for argv in (["eval", "--checkpoint", str(path)], ["energy", "--checkpoint", str(path)]):
        assert needle in main_error(capsys, argv)


def test_v1_checkpoint_is_refused_with_the_hint_then_converted_explicitly(tmp_path, capsys,
                                                                          trained_path):
    from stochep.cli import main

    ck = load_checkpoint(str(trained_path))
    old = {k: v for k, v in ck.items()
           if k not in ("best_epoch", "best_val_acc", "test_acc_at_best_val")}
    old.update(format="stochep-checkpoint-v1", best_acc=0.5,
               config={k: v for k, v in ck["config"].items() if k != "val_fraction"})
    old_path, new_run = tmp_path / "old.pt", tmp_path / "converted"
    torch.save(old, old_path)
    line = main_error(capsys, ["eval", "--checkpoint", str(old_path)])
    assert "old format stochep-checkpoint-v1" in line
    assert f"stochep convert-checkpoint {old_path} NEW.pt --trust" in line
    assert "--trust" in main_error(capsys, ["convert-checkpoint", str(old_path), "x.pt"])
    new = new_run / "checkpoint_last.pt"
    assert main(["convert-checkpoint", str(old_path), str(new), "--trust"]) == 0
    conv = load_checkpoint(str(new))
    assert conv["config"]["val_fraction"] == 0.0 and conv["best_val_acc"] is None
    assert all(torch.equal(conv["model"][k], v) for k, v in ck["model"].items())
    capsys.readouterr()
    assert main(["train", "--out", str(new_run), "--resume", "--epochs", "2",
                 "--no-progress"]) == 0
    assert load_checkpoint(str(new))["epoch"] == 2
    assert "best_val_accuracy=none" in capsys.readouterr().out


def test_divergence_on_an_epochs_last_batch_exits_1_and_keeps_the_checkpoints(
        tmp_path, capsys, monkeypatch, digits):
    from stochep.cli import main
    from stochep.data.split import holdout_indices
    from stochep.training import trainer as train

    out = tmp_path / "run"
    n_train = len(holdout_indices(len(digits.y_train), 0.1, 1 + train.VAL_SPLIT_SEED_OFFSET)[0])
    steps = 2 * -(-n_train // 32)  # the last batch of epoch 2
    names = ("checkpoint_last.pt", "checkpoint_best.pt")
    seen, real_make = {}, train.make_optimizer

    def make_optimizer(cfg, params):
        opt = real_make(cfg, params)
        real_step, calls = opt.step, []

        def step(self):
            real_step()
            calls.append(1)
            if len(calls) == steps:
                seen.update({n: (out / n).read_bytes() for n in names})  # as epoch 1 wrote
                with torch.no_grad():
                    self.param_groups[0]["params"][0].fill_(float("nan"))
        opt.step = types.MethodType(step, opt)  # a bound method, as the scheduler expects
        return opt

    monkeypatch.setattr(train, "make_optimizer", make_optimizer)
    assert main(["train", "--epochs", "3", "--seed", "1", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("stochep train: stopped: NaN/inf") and "epoch 2" in err[-1]
    assert len([s for s in err if "stopped" in s or "Traceback" in s]) == 1
    assert len(seen) == 2 and {n: (out / n).read_bytes() for n in names} == seen
