"""Per-step gradient check (tools/gdu.py, `stochep gradcheck --per-step`): on a tiny mean-field
net, EP's per-step updates equal BPTT's per-step gradients at small beta (GDU, Ernoult et al.
2019) and drift apart at a large one; the command writes its JSON and refuses bad input in one
line."""
import json
import os
import subprocess
import sys

import pytest
from helpers import assert_one_line_error

from stochep.tools.gdu import per_step_check
from stochep.tools.gradcheck import digits_network


@pytest.fixture(scope="module")
def tiny(digits):
    net, _ = digits_network([64, 32, 32], 2, 2.0, 0.5, 0.5, 0)
    return net, digits.x_train[:16], digits.y_train[:16]


def test_ep_per_step_updates_match_bptt_per_step_gradients_at_small_beta(tiny):
    res = per_step_check(*tiny, beta=1e-3, T=300, K=8)
    names = [r["tensor"] for r in res["rows"]]
    assert names[:2] == ["interactions.0.weight", "interactions.0.bias"]
    assert names[-3:] == ["neurons.1", "neurons.2", "neurons.3"]
    for r in res["rows"]:
        assert r["elements"] > 0
        assert r["rmse"] < 0.01 and r["sign_agreement"] > 0.999, r
        assert r["step_cosine_min"] > 0.9999, r
    # the nonzero series start where the theory says: the top layer's weights move at the first
    # nudged step, the first layer's only once the nudge has reached layer 1 (two steps later)
    assert res["bptt"]["interactions.2.weight"][0].abs().max() > 0
    assert res["bptt"]["interactions.0.weight"][:2].abs().max() == 0
    assert res["ep"]["interactions.0.weight"][2].abs().max() > 0


def test_agreement_degrades_with_a_large_beta(tiny):
    small = per_step_check(*tiny, beta=1e-3, T=300, K=8)["rows"]
    large = per_step_check(*tiny, beta=0.3, T=300, K=8)["rows"]
    for a, b in zip(small, large):
        assert b["rmse"] > 10 * a["rmse"] and b["step_cosine_min"] < a["step_cosine_min"]


def run(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, env=env, cwd=cwd)


def test_cli_per_step_writes_json(tmp_path):
    out = tmp_path / "gdu.json"
    res = run("gradcheck", "--per-step", "--widths", "64", "16", "--batch", "4", "--T", "200",
              "--steps", "4", "--beta", "1e-3", "--json", str(out), "--plot", "")
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())
    assert got["steps"] == 4 and len(got["rows"]) == 6  # 2 weights, 2 biases, 2 layers
    assert all(r["sign_agreement"] > 0.99 for r in got["rows"])
    assert len(got["series"]["neurons.2"]["ep"]) == 4
    assert "neurons.2" in res.stdout


@pytest.mark.parametrize("args,needle", [
    (["--steps", "0"], "steps must be an integer >= 1"),
    (["--steps", "50", "--T", "10"], "--steps (50) must be <= --T (10)"),
    (["--beta", "-1"], "beta"),
    (["--set", "algo=bptt"], "--per-step compares EP"),
])
def test_cli_per_step_bad_input_is_one_line(args, needle):
    assert_one_line_error(run("gradcheck", "--per-step", *args), needle)
