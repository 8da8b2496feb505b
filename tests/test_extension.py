"""The seams: a neuron model, a cost and a learning rule defined here, outside the package,
registered through the public registries and trained with on a tiny net. Plus warm starts,
phase observers and numbers in scientific notation."""
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from stochep import COSTS, EP, NEURONS, RULES, Cost, Dynamics, LearningRule, NeuronModel, StepResult
from stochep.cli import main
from stochep.tools.memory import measure_step_memory
from stochep.training.config import Config, ConfigError, load_yaml
from stochep.training.models import build_network
from stochep.training.trainer import Trainer


# ---- the toy parts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ToyLinearNeuron(NeuronModel):
    """A deterministic neuron: rate = state in [0, 1], gain 1, no spikes."""

    @property
    def stochastic(self):
        return False

    @property
    def gain(self):
        return 1.0

    def rate(self, xi):
        return xi.clamp(0.0, 1.0)

    def sample(self, rates, rng):
        return rates

    def mean_field(self):
        return self


class ToyDoubleMSE(Cost):
    """``||xi_out - y * high||^2`` (twice the state cost)."""

    def value(self, xi_out, target, neuron):
        return (xi_out.flatten(1) - target * neuron.high).pow(2).sum(1)

    def grad(self, xi_out, target, neuron):
        return 2.0 * (xi_out - target.view_as(xi_out) * neuron.high)


@dataclass(frozen=True)
class ToyDeltaRule(LearningRule):
    """Train the readout only, by the delta rule on the free equilibrium."""

    T: int
    streams: object = None
    options: ClassVar[dict] = {"T": 0}  # free-phase steps (0: T_free)

    @classmethod
    def from_config(cls, cfg, streams=None):
        return cls(cls.settings(cfg)["T"] or cfg.T_free, streams)

    def gradients(self, net, x, y, init=None):
        init = net.zero_states(len(x), x.dtype) if init is None else init
        free = Dynamics().relax(net, x, init, self.T, self.streams.spike).final
        target = net.target(y, x.dtype)
        err = target * net.neuron.high - free[-1]
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        top = net.interactions[-1]
        below = net.rates(free)[-2] if len(free) > 1 else x
        for p, g in zip(top.parameters(), top.contrast(below, err)):
            p.grad = g
        return StepResult(free, net.loss(free[-1], target))


@pytest.fixture
def toys():
    NEURONS.register("toy-linear")(ToyLinearNeuron)
    COSTS.register("toy-double")(ToyDoubleMSE)
    RULES.register("toy-delta")(ToyDeltaRule)
    yield
    NEURONS.unregister("toy-linear")
    COSTS.unregister("toy-double")
    RULES.unregister("toy-delta")


def _tiny(**kw):
    base = {"layers": [32], "n_perclass": 2, "epochs": 2, "batch_size": 32, "lr": 0.003,
            "T_free": 20, "T_nudge": 8, "calibrate_rate": 0.0, "val_fraction": 0.0}
    return Config(**{**base, **kw})


def test_a_toy_neuron_trains_on_a_tiny_net(toys, digits):
    tr = Trainer(_tiny(neuron="toy-linear"), digits, progress=False)
    assert isinstance(tr.net.neuron, ToyLinearNeuron)
    tr.fit()
    assert tr.history[-1]["test_acc"] > 0.6  # chance is 0.1
    # its states stay inside its own box [0, 1], not the hard sigmoid's [0, 1/kappa]
    free = tr.rule.gradients(tr.net, tr.inputs(digits.x_test[:64]), digits.y_test[:64]).free
    assert all(s.min() >= 0 and s.max() <= 1 for s in free)


def test_a_toy_cost_sets_the_nudge_and_trains(toys, digits):
    tr = Trainer(_tiny(cost="toy-double"), digits, progress=False)
    assert isinstance(tr.net.cost, ToyDoubleMSE)
    xi = torch.rand(4, 20) / 2
    t = tr.net.target(torch.tensor([0, 1, 2, 3]))
    assert torch.allclose(tr.net.loss_grad(xi, t), 2 * (xi - t / 2))
    tr.fit()
    assert tr.history[-1]["test_acc"] > 0.6


def test_a_toy_rule_trains_through_config_cli_and_memory(toys, digits, tmp_path, capsys):
    cfg = _tiny(algo="toy-delta", rules={"toy-delta": {"T": 15}}, epochs=3, lr=0.01)
    tr = Trainer(cfg, digits, progress=False)
    assert isinstance(tr.rule, ToyDeltaRule) and tr.rule.T == 15
    w0 = tr.net.interactions[0].weight.detach().clone()
    tr.fit()
    assert torch.equal(tr.net.interactions[0].weight, w0)  # only the readout learned
    assert tr.history[-1]["test_acc"] > 0.5
    # the CLI's --algo choices and the memory tool read the same registry
    out = tmp_path / "run"
    assert main(["train", "--algo", "toy-delta", "--epochs", "1", "--out", str(out),
                 "--no-progress", "--set", "calibrate_rate=0.0"]) == 0
    assert "test_accuracy=" in capsys.readouterr().out
    assert measure_step_memory(_tiny(), "toy-delta", 8)["peak_bytes"] > 0


def test_a_paper_neuron_field_set_for_another_neuron_is_refused(toys):
    # the toy neuron has no kappa: setting one must not be silently ignored
    with pytest.raises(ValueError, match="'toy-linear' does not read kappa"):
        _tiny(neuron="toy-linear", kappa=1.0)


def test_unknown_parts_are_one_line_errors():
    for key, value in (("neuron", "lif-x"), ("cost", "hinge"), ("algo", "magic")):
        with pytest.raises(ValueError, match=f"{'algo' if key == 'algo' else key} must be one of"):
            Config(**{key: value}).validate()


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        RULES.register("ep")(ToyDeltaRule)


# ---- warm starts and observers ----------------------------------------------------------------
def test_a_warm_started_free_phase_continues_from_its_initial_state(digits):
    cfg = Config(layers=[24], n_perclass=2, spikes="rate", calibrate_rate=0.0)
    net = Trainer(cfg, digits, progress=False).net.double()
    x, y = digits.x_train[:16].double(), digits.y_train[:16]
    settled = Dynamics().relax(net, x, net.zero_states(16, torch.float64), 1500).final
    full = EP(0.05, 1500, 200, "three-phase").gradients(net, x, y)
    g_full = [p.grad.clone() for p in net.parameters()]
    short = EP(0.05, 1, 200, "three-phase")
    warm = short.gradients(net, x, y, init=settled)
    g_warm = [p.grad.clone() for p in net.parameters()]
    for a, b in zip(g_full, g_warm):
        assert torch.allclose(a, b, atol=1e-9)
    assert torch.allclose(warm.free[-1], full.free[-1], atol=1e-9)
    cold = short.gradients(net, x, y)  # one step from zero is far from the equilibrium
    assert not torch.allclose(cold.free[-1], full.free[-1], atol=1e-3)


def test_an_observer_sees_every_step_and_its_spikes(digits):
    tr = Trainer(Config(layers=[24], n_perclass=2, calibrate_rate=0.0), digits, progress=False)
    x = tr.inputs(digits.x_train[:8])
    seen = []
    res = Dynamics().relax(tr.net, x, tr.net.zero_states(8), 12, tr.streams.spike,
                           observer=lambda t, spikes: seen.append((t, spikes)))
    assert [t for t, _ in seen] == list(range(1, 13)) and res.steps == 12
    assert [tuple(s.shape) for s in seen[-1][1]] == [(8, 24), (8, 20)]
    assert all(((s == 0) | (s == 1)).all() for _, spikes in seen for s in spikes)


# ---- numbers as people write them -------------------------------------------------------------
@pytest.mark.parametrize("text,value", [("1e-3", 1e-3), ("3e-4", 3e-4), ("1.0e9", 1e9),
                                        ("2E-5", 2e-5), ("0.01", 0.01), ("1", 1.0)])
def test_scientific_notation_in_set(text, value):
    assert Config().apply_overrides([f"lr={text}"]).validate().lr == value


def test_scientific_notation_in_a_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 3e-4\nweight_decay: 1e-2\nbeta: 5e-1\n")
    cfg = Config.from_dict(load_yaml(str(path))).validate()
    assert (cfg.lr, cfg.weight_decay, cfg.beta) == (3e-4, 1e-2, 0.5)


def test_a_word_where_a_number_goes_is_still_an_error():
    with pytest.raises(ConfigError, match="lr must be of type float"):
        Config().apply_overrides(["lr=fast"])


def test_a_toy_layer_kind_registers_and_builds_from_the_config(digits):
    from stochep.engine.interactions import INTERACTIONS, Dense

    @INTERACTIONS.register("half-dense")
    class HalfDense(Dense):
        """A dense layer whose weights start at half the scale."""

        @classmethod
        def from_spec(cls, index, spec, in_shape, init_scale=1.0, embedding=None):
            return cls(in_shape, spec["half-dense"], init_scale=init_scale / 2)

    try:
        tr = Trainer(_tiny(layers=[{"half-dense": 24}], epochs=1), digits, progress=False)
        assert isinstance(tr.net.interactions[0], HalfDense)
        assert tr.net.interactions[0].out_shape == (24,)
        tr.fit()
        assert tr.history[-1]["test_acc"] > 0.3
        with pytest.raises(ValueError, match="half-dense"):
            build_network(Config(layers=[{"bogus": 3}]), (64,), 10)
    finally:
        INTERACTIONS.unregister("half-dense")
