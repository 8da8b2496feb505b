"""Parts from outside the package (docs/examples/my_parts.py: a neuron, a rule with an option, a
dataset with an option) train from the plain `stochep` command with --plugin, also data-parallel
and resumed, which import the plugin again from the run's config."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stochep.plugins import PluginError, load_plugins, split_plugin_args

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "my_parts.py"
PARTS = ["--set", "neuron=sigbern", "--set", "neuron_options.slope=6.0", "--algo",
         "ep-random-beta", "--set", "rules.ep-random-beta.spread=0.3", "--dataset", "blobs",
         "--set", "data_options.n_per_class=60", "--set", "layers=[16]", "--set", "kappa=1.0",
         "--set", "T_free=10", "--set", "T_nudge=4", "--no-progress"]


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
def test_outside_parts_train_data_parallel_and_resume_from_the_plain_command(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "my_parts.py")
    out = tmp_path / "run"
    r = stochep("--plugin", "my_parts", "train", *PARTS, "--epochs", "2", "--nproc", "2",
                "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["plugins"] == ["my_parts"] and cfg["neuron"] == "sigbern"
    assert cfg["neuron_options"] == {"slope": 6.0}
    assert cfg["rules"]["ep-random-beta"] == {"spread": 0.3}
    assert cfg["data_options"] == {"n_per_class": 60}
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
