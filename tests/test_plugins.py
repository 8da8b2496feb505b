"""Parts from outside the package (docs/extending.md's tutorial: a neuron, a rule with an option, a
dataset with an option) train from the plain `stochep` command with --plugin, as the tutorial
writes it, also data-parallel and resumed, which import the plugin again from the run's config;
and from Python, as the tutorial's last block does."""
import json
import shlex
import subprocess
import sys

import pytest
import yaml
from helpers import write_tutorial_plugin

from stochep.plugins import PluginError, load_plugins, split_plugin_args


def stochep(*args, cwd):
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, cwd=cwd, check=False)


def test_split_and_bad_plugins_are_one_line(tmp_path):
    assert split_plugin_args(["--plugin", "a", "train", "--plugin=b.py", "--epochs", "1"]) == \
        (["a", "b.py"], ["train", "--epochs", "1"])
    with pytest.raises(PluginError, match="'no_such_module_x' not found"):
        load_plugins(["no_such_module_x"])
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match="failed to import: RuntimeError: boom"):
        load_plugins([str(bad)])
    r = stochep("--plugin", "no_such_module_x", "train", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_without_the_plugin_the_error_says_how_to_add_one(tmp_path):
    r = stochep("train", "--set", "neuron=sigbern", cwd=tmp_path)
    assert r.returncode == 2 and "--plugin MODULE" in r.stderr, r.stderr


@pytest.mark.slow
def test_the_tutorials_parts_train_data_parallel_and_resume_from_the_plain_command(tmp_path):
    command, python_block = write_tutorial_plugin(tmp_path)
    argv = shlex.split(command)
    assert argv[:3] == ["stochep", "--plugin", "my_parts.py"]
    out = tmp_path / "runs" / "blobs"
    r = stochep(*argv[1:], "--set", "T_free=10", "--set", "T_nudge=4", "--no-progress",
                "--nproc", "2", "--epochs", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load((out / "config.yaml").read_text())  # by owner
    assert cfg["run"]["plugins"] == [str(tmp_path / "my_parts.py")]
    assert cfg["neuron"]["name"] == "sigbern"
    assert cfg["neuron"]["options"] == {"slope": 6.0, "spikes": True}  # every option in force
    assert cfg["rule"]["name"] == "ep-random-beta"
    assert cfg["rule"]["sections"]["ep-random-beta"] == {"spread": 0.3}
    assert cfg["data"] == {**cfg["data"], "name": "blobs", "options": {"n_per_class": 60}}
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    # --resume without --plugin, in one process and in two: the run's config names it
    for epochs, nproc in ((3, "1"), (4, "2")):
        r = stochep("train", "--out", str(out), "--resume", "--epochs", str(epochs),
                    "--nproc", nproc, "--no-progress", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 4 and summary["world_size"] == 2
    assert summary["test_accuracy"] > 0.4  # 4 classes: chance is 0.25
    r = stochep("eval", "--checkpoint", str(out / "checkpoint_best.pt"), cwd=tmp_path)
    assert r.returncode == 0 and "test_accuracy=" in r.stdout, r.stderr
    # the tutorial's Python block, as written
    r = subprocess.run([sys.executable, "-c", python_block], capture_output=True, text=True,
                       cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr


def test_a_misspelt_neuron_option_names_the_closest(tmp_path):
    write_tutorial_plugin(tmp_path)
    r = stochep("--plugin", "my_parts.py", "train", "--set", "neuron=sigbern",
                "--set", "neuron_options.slop=6.0", cwd=tmp_path)
    assert r.returncode == 2 and "'slop' (did you mean 'slope'?)" in r.stderr, r.stderr


def test_gradcheck_takes_set_so_an_outside_neuron_is_checked(tmp_path):
    write_tutorial_plugin(tmp_path)
    base = ("gradcheck", "--set", "layers=[16]", "--T", "300", "--batch", "8")
    own = stochep("--plugin", "my_parts.py", *base, "--set", "neuron=sigbern", cwd=tmp_path)
    paper = stochep(*base, cwd=tmp_path)
    assert own.returncode in (0, 1) and "cosine_min=" in own.stdout, own.stderr
    assert paper.returncode in (0, 1) and "cosine_min=" in paper.stdout, paper.stderr
    assert own.stdout != paper.stdout  # the neuron it was asked for, not the paper's
