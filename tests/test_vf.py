"""Vector-field EP (rules/vf.py): feedback tied to the forward weights trains exactly as EP; fixed
feedback stays fixed; the angle is right on a known pair; dense and conv layers take feedback,
and the angle reaches metrics.jsonl and the progress line."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from helpers import TINY, TINY_ARGS, assert_one_line_error

from stochep import Config, Trainer
from stochep.engine.interactions import ConvPool, Dense
from stochep.rules.vf import VF, feedback_angles


def _train(digits, **kw):
    tr = Trainer(Config(**{**TINY, **kw}), digits, progress=False)
    tr.fit()
    return tr


def test_feedback_tied_to_the_forward_weights_is_ep_exactly(digits):
    ep = _train(digits)
    vf = _train(digits, algo="vf", rules={"vf": {"feedback_init": "forward"}})
    assert isinstance(vf.rule, VF)
    fb = vf.net.interactions[1].feedback
    assert isinstance(fb, torch.nn.Parameter) and torch.equal(fb, vf.net.interactions[1].weight)
    ep_params = dict(ep.net.named_parameters())
    for name, p in vf.net.named_parameters():
        ref = ep_params[name.replace("feedback", "weight")]
        assert torch.equal(p, ref), name
    assert ep.history[-1]["val_acc"] == vf.history[-1]["val_acc"]
    assert vf.history[-1]["feedback_angle"] == pytest.approx([0.0], abs=1e-3)


def test_fixed_random_feedback_stays_fixed_and_learned_feedback_moves(digits):
    fixed = Trainer(Config(**{**TINY, "algo": "vf", "layers": [32, 32],
                              "rules": {"vf": {"feedback": "fixed"}}}), digits, progress=False)
    start = [m.feedback.clone() for m in fixed.net.interactions[1:]]
    assert all("feedback" in dict(m.named_buffers()) for m in fixed.net.interactions[1:])
    assert not any(n.endswith("feedback") for n, _ in fixed.net.named_parameters())
    w0 = fixed.net.interactions[1].weight.detach().clone()
    fixed.fit()
    assert all(torch.equal(m.feedback, s) for m, s in zip(fixed.net.interactions[1:], start))
    assert not torch.equal(fixed.net.interactions[1].weight, w0)
    # random, not the forward weights: an angle near 90 degrees at the start
    assert all(60 < a < 120 for a in fixed.history[0]["feedback_angle"])
    learned = _train(digits, algo="vf", layers=[32, 32])
    assert not any(torch.equal(m.feedback, s) for m, s in zip(learned.net.interactions[1:], start))


def test_angle_on_a_known_pair():
    d = Dense(3, 2)
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    with torch.no_grad():
        d.weight.copy_(w)
    d.set_feedback(b, learned=False)
    net = type("Net", (), {"interactions": [Dense(4, 3), d]})()
    assert feedback_angles(net) == pytest.approx([45.0])
    d.set_feedback(-w, learned=True)
    assert feedback_angles(net) == pytest.approx([180.0])
    d.set_feedback(torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]), learned=True)
    assert feedback_angles(net) == pytest.approx([90.0])
    assert math.isclose(feedback_angles(net)[0], 90.0)


@pytest.mark.parametrize("layer", ["dense", "conv"])
def test_feedback_replaces_the_transposed_weight_in_the_down_drive(layer):
    torch.manual_seed(0)
    inter = Dense(6, 4) if layer == "dense" else ConvPool((2, 6, 6), 3, 3, padding=1, pool=2)
    s_lo = torch.rand(5, *inter.in_shape)
    s_hi = torch.rand(5, *inter.out_shape)
    ctx = inter.context(s_lo)
    plain = inter.drive_down(s_hi, ctx)
    b = torch.randn_like(inter.weight)
    inter.set_feedback(b, learned=True)
    other = type(inter)(6, 4) if layer == "dense" else ConvPool((2, 6, 6), 3, 3, padding=1, pool=2)
    with torch.no_grad():
        other.weight.copy_(b)
    assert torch.allclose(inter.drive_down(s_hi, ctx), other.drive_down(s_hi, ctx), atol=1e-6)
    assert not torch.allclose(inter.drive_down(s_hi, ctx), plain)
    acc = torch.zeros_like(s_lo)
    inter.add_down_(acc, s_hi, ctx, 1.0)
    assert torch.allclose(acc, other.drive_down(s_hi, ctx), atol=1e-6)
    # the learned feedback gets the forward weight's contrast
    grads = inter.contrast(s_lo, s_hi)
    assert len(grads) == 3 and torch.equal(grads[0], grads[2])


def test_vf_on_a_conv_net_gives_every_feedback_a_gradient_and_reloads():
    from stochep.engine.rng import Streams
    from stochep.training.build import build_rule
    from stochep.training.models import build_network

    cfg = Config(algo="vf", layers=[{"conv": 3, "kernel": 3, "padding": 1},
                                    {"conv": 4, "kernel": 3, "padding": 1, "pool": 2}],
                 n_perclass=1, T_free=8, T_nudge=4, average_last=2)
    net = build_network(cfg, (1, 8, 8), 10)
    assert [type(m) for m in net.interactions[1:]] == [ConvPool, Dense]
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    build_rule(cfg, Streams(0)).gradients(net, x, y)
    for m in net.interactions[1:]:
        assert m.feedback.grad is not None and torch.equal(m.feedback.grad, m.weight.grad)
    again = build_network(cfg, (1, 8, 8), 10)
    again.load_state_dict(net.state_dict())
    assert torch.equal(again.interactions[1].feedback, net.interactions[1].feedback)


def run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stochep", *args], capture_output=True,
                          text=True, env=env)


@pytest.mark.slow
def test_cli_logs_the_angle(tmp_path):
    out = tmp_path / "run"
    res = run("train", "--algo", "vf", "--epochs", "1", *TINY_ARGS, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "angle " in res.stderr
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(row["feedback_angle"]) == 1 and 0 <= row["feedback_angle"][0] <= 180


def test_cli_refuses_bad_feedback_options():
    assert_one_line_error(run("train", "--algo", "vf", "--set", "rules.vf.feedback=maybe"),
                          "rules.vf.feedback")
    assert_one_line_error(run("train", "--algo", "vf", "--set",
                              "rules.vf.feedback_init=zeros"), "rules.vf.feedback_init")


def test_decay_shrinks_forward_and_learned_feedback_alike(digits):
    from stochep.engine.rng import Streams
    from stochep.training.build import build_rule
    from stochep.training.models import build_network

    cfg = Config(**{**TINY, "algo": "vf", "layers": [16, 16], "rules": {"vf": {"decay": 0.1}}})
    net = build_network(cfg, (64,), 10)
    w0 = [m.weight.detach().clone() for m in net.interactions]
    b0 = [m.feedback.detach().clone() for m in net.interactions[1:]]
    build_rule(cfg, Streams(0)).gradients(net, digits.x_train[:8], digits.y_train[:8])
    assert torch.equal(net.interactions[0].weight, w0[0])  # no feedback: not decayed
    for m, w, b in zip(net.interactions[1:], w0[1:], b0):
        assert torch.allclose(m.weight, 0.9 * w) and torch.allclose(m.feedback, 0.9 * b)
    with pytest.raises(ValueError, match="rules.vf.decay"):
        Config(algo="vf", rules={"vf": {"decay": 1.5}})
