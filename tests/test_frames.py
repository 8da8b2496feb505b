"""Temporal EP on frame sequences (appendix A, eq. 18): warm starts, updates, prediction."""
import pytest
import torch

from stochep.engine.dynamics import Dynamics
from stochep.engine.network import EPNetwork
from stochep.engine.neurons import Neuron
from stochep.engine.rng import Streams
from stochep.rules import StepResult
from stochep.rules.ep import EP
from stochep.rules.frames import FrameSequence


def _net(seed=0):
    torch.manual_seed(seed)
    return EPNetwork.fc([12, 16], n_classes=3, n_perclass=2, neuron=Neuron(spikes="bernoulli"),
                        init_scale=1.0)


def _ep(seed=0):
    return EP(beta=0.3, T_free=12, T_nudge=4, estimator="three-phase", average_last=3,
              shared_noise=True, dynamics=Dynamics(), streams=Streams(seed))


def _grads(net):
    return [p.grad.clone() for p in net.parameters()]


def test_one_frame_with_gamma_0_is_static_ep():
    x, y = torch.rand(5, 12), torch.tensor([0, 1, 2, 0, 1])
    net = _net()
    static = _ep().gradients(net, x, y)
    g_static = _grads(net)
    temporal = FrameSequence(_ep(), gamma=0.0).gradients(net, x[:, None], y)
    assert all(torch.equal(a, b) for a, b in zip(g_static, _grads(net)))
    assert torch.equal(temporal.free[-1], static.free[-1])
    assert torch.equal(temporal.scores.argmax(1), net.predict(static.free[-1]))


class Spy:
    """A rule that records the initial states it is given (and returns fixed free states)."""

    def __init__(self, net):
        self.net, self.inits, self.calls = net, [], 0

    def gradients(self, net, x, y, init=None):
        self.inits.append(init)
        self.calls += 1
        for p in net.parameters():
            p.grad = torch.full_like(p, float(self.calls))
        free = [torch.full((len(x), *s), 0.1 * self.calls) for s in net.layer_shapes]
        return StepResult(free=free, loss=torch.zeros(len(x)))


def test_warm_start_is_gamma_times_the_previous_free_equilibrium():
    net = _net()
    x, y = torch.rand(4, 3, 12), torch.tensor([0, 1, 2, 0])
    spy = Spy(net)
    FrameSequence(spy, gamma=0.5).gradients(net, x, y)
    assert spy.inits[0] is None  # the first frame starts from zero
    assert torch.allclose(spy.inits[1][0], torch.full((4, 16), 0.05))  # 0.5 * 0.1
    assert torch.allclose(spy.inits[2][-1], torch.full((4, 6), 0.1))  # 0.5 * 0.2
    for p in net.parameters():  # "sample": the mean of the frames' gradients (1, 2, 3)
        assert torch.allclose(p.grad, torch.full_like(p, 2.0))


def test_gamma_1_on_identical_frames_starts_the_second_frame_at_the_first_equilibrium():
    net = _net()
    x1 = torch.rand(4, 12)
    x, y = torch.stack([x1, x1], 1), torch.tensor([0, 1, 2, 0])
    spy_ep = _ep()
    inits = []

    class Recording:
        def gradients(self, net, x, y, init=None):
            inits.append(init)
            res = spy_ep.gradients(net, x, y, init=init)
            inits.append(res.free)
            return res

    FrameSequence(Recording(), gamma=1.0).gradients(net, x, y)
    first_free, second_init = inits[1], inits[2]
    assert all(torch.equal(a, b) for a, b in zip(first_free, second_init))


def test_frame_update_steps_the_optimizer_between_frames():
    net = _net()
    x, y = torch.rand(4, 3, 12), torch.tensor([0, 1, 2, 0])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    FrameSequence(Spy(net), gamma=0.3, frame_update="frame").gradients(net, x, y, optimizer=opt)
    # two steps inside (after frames 1 and 2: grads 1 then 2); the last frame's grad (3) is left
    for b, p in zip(before, net.parameters()):
        assert torch.allclose(p.detach(), b - 0.1 * (1 + 2), atol=1e-6)
        assert torch.allclose(p.grad, torch.full_like(p, 3.0))


def test_prediction_sums_output_rates_over_frames():
    net = _net()
    torch.manual_seed(1)
    x = torch.rand(6, 4, 12)
    fs = FrameSequence(_ep(), gamma=0.3)
    dyn = Dynamics()
    pred = fs.predict(net, x, dyn, 12, Streams(3).spike)
    # by hand: the same free phases, warm-started, class scores summed over the frames
    rng, state, total = Streams(3).spike, net.zero_states(6), 0.0
    for t in range(4):
        free = dyn.relax(net, x[:, t], state, 12, rng).final
        total = total + net.class_scores(free[-1])
        state = [0.3 * s for s in free]
    assert torch.equal(pred, total.argmax(1))


def test_bad_frame_options_are_clear_errors():
    with pytest.raises(ValueError, match="gamma"):
        FrameSequence(_ep(), gamma=1.5)
    with pytest.raises(ValueError, match="frame_update"):
        FrameSequence(_ep(), frame_update="epoch")
    with pytest.raises(ValueError, match=r"\[batch, frames"):
        FrameSequence(_ep()).gradients(_net(), torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))


# ---- the whole pipeline on event data ---------------------------------------------------------
def test_gradcheck_passes_on_a_tiny_3c_shaped_net_fed_one_frame():
    from stochep.tools.gradcheck import compare_ep_bptt
    from stochep.training.config import Config
    from stochep.training.models import build_network
    from stochep.training.presets import load_preset

    cfg = load_preset("dvsgesture-3c")
    cfg.apply_overrides(["layers=[{conv: 2, kernel: 5, padding: 1, pool: 2}, "
                         "{conv: 3, kernel: 3, padding: 1, pool: 2}, "
                         "{conv: 4, kernel: 3, padding: 1, pool: 2}]", "n_perclass=2",
                         "init_scale=0.5"])
    net = build_network(Config.from_dict(cfg.to_dict()), (60, 2, 16, 16), 11)
    assert net.input_shape == (2, 16, 16)  # the network sees one frame
    torch.manual_seed(0)
    frame = torch.rand(3, 2, 16, 16)
    rows = compare_ep_bptt(net, frame, torch.tensor([0, 5, 10]), T_free=120, T_nudge=120)
    assert min(r["cosine"] for r in rows) > 0.99


def test_trainer_runs_temporal_ep_on_tonic_layout_recordings(tmp_path, monkeypatch):
    from helpers import write_tonic

    from stochep.training.config import Config
    from stochep.training.trainer import Trainer

    monkeypatch.setenv("STOCHEP_CACHE", str(tmp_path / "cache"))
    write_tonic(tmp_path / "data")
    cfg = Config(dataset="dvsgesture", data_dir=str(tmp_path / "data"),
                 data_options={"n_frames": 3, "size": 8}, val_fraction=0.0,
                 layers=[{"conv": 2, "kernel": 3, "padding": 1, "pool": 2}], n_perclass=2,
                 T_free=6, T_nudge=2, average_last=2, batch_size=2, epochs=1, gamma=0.3)
    data = cfg.load_data()
    assert data.x_train.shape == (5, 3, 2, 8, 8)
    tr = Trainer(cfg, data, str(tmp_path / "run"), progress=False)
    assert isinstance(tr.rule, FrameSequence) and tr.net.input_shape == (2, 8, 8)
    before = [p.detach().clone() for p in tr.net.parameters()]
    summary = tr.fit()
    assert 0 <= summary["test_accuracy"] <= 1 and len(tr.history) == 1
    assert any(not torch.equal(b, p) for b, p in zip(before, tr.net.parameters()))
    static = Config.from_dict({**cfg.to_dict(), "data_options": {"n_frames": 3, "size": 8,
                                                                 "static": True}}).load_data()
    assert static.x_train.shape == (5, 1, 2, 8, 8)
    assert torch.allclose(static.x_train[:, 0].flatten(1).amax(1), torch.ones(5))


def test_frames_after_the_first_use_the_shorter_warm_phases():
    net = _net()
    x, y = torch.rand(4, 3, 12), torch.tensor([0, 1, 2, 0])
    first, later = Spy(net), Spy(net)
    FrameSequence(first, gamma=0.3, warm_rule=later).gradients(net, x, y)
    assert first.calls == 1 and later.calls == 2
    steps = []

    class Counting(Dynamics):
        def relax(self, net, x, init, n, *a, **k):
            steps.append(n)
            return super().relax(net, x, init, n, *a, **k)

    FrameSequence(_ep(), warm_steps=5).predict(net, x, Counting(), 12, Streams(0).spike)
    assert steps == [12, 5, 5]


def test_trainer_builds_the_warm_rule_from_T_free_warm(tmp_path, monkeypatch):
    from helpers import write_tonic

    from stochep.training.config import Config
    from stochep.training.trainer import Trainer

    monkeypatch.setenv("STOCHEP_CACHE", str(tmp_path / "cache"))
    write_tonic(tmp_path / "data")
    cfg = Config(dataset="dvsgesture", data_dir=str(tmp_path / "data"),
                 data_options={"n_frames": 2, "size": 8}, layers=[8], n_perclass=2,
                 T_free=6, T_nudge=2, average_last=2, T_free_warm=3)
    tr = Trainer(cfg, cfg.load_data(), progress=False)
    assert tr.rule.rule.T_free == 6 and tr.rule.warm_rule.T_free == 3 and tr.rule.warm_steps == 3
    with pytest.raises(ValueError, match="T_free_warm"):
        Config(T_free_warm=-1).validate()


def test_event_mnist_fc_preset_trains_a_dense_net_on_frame_sequences():
    """The event-mnist-fc preset: dense layers read each 2xHxW frame flattened, the trainer
    runs temporal EP with the shorter warm phases, and the weights move."""
    from stochep.data.base import Dataset
    from stochep.rules import FrameSequence
    from stochep.training.presets import load_preset
    from stochep.training.trainer import Trainer

    cfg = load_preset("event-mnist-fc")
    assert cfg.dataset == "event-mnist" and cfg.data_options["n_frames"] == 10
    assert cfg.paper and cfg.T_free_warm < cfg.T_free
    cfg.apply_overrides(["layers=[16]", "n_perclass=2", "epochs=1", "batch_size=4",
                         "val_fraction=0.0", "calibrate_rate=0.0"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 2, 8, 8, generator=g)
    y = torch.arange(8) % 10
    data = Dataset("event-mnist", x, y, x[:4], y[:4], n_classes=10)
    tr = Trainer(cfg, data, progress=False)
    assert isinstance(tr.rule, FrameSequence) and tr.rule.warm_steps == cfg.T_free_warm
    assert tr.net.input_shape == (2, 8, 8)
    before = [p.detach().clone() for p in tr.net.parameters()]
    tr.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.net.parameters()))
    assert 0.0 <= tr.evaluate(data.x_test, data.y_test) <= 1.0
