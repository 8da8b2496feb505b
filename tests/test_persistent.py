"""Persistent free phases (training/persistent.py): each sample's free phase starts from its own
free equilibrium of the previous epoch, and a resumed run continues bit-exactly from the
checkpointed states."""
import pytest
import torch

from stochep import Config, Trainer

TINY = {"layers": [24], "T_free": 10, "T_nudge": 4, "batch_size": 64, "epochs": 3,
        "persist_free": True, "T_free_persist": 4}


class Spy:
    """Records the initial states each batch's free phase is given, then runs the rule."""

    def __init__(self, rule):
        self.rule, self.inits = rule, []

    def gradients(self, net, x, y, init=None):
        self.inits.append(None if init is None else [s.clone() for s in init])
        return self.rule.gradients(net, x, y, init=init)


def test_the_second_epoch_starts_each_sample_from_its_stored_free_state(digits):
    tr = Trainer(Config(**TINY), digits, progress=False)
    assert tr.persist_rule.T_free == 4 and tr.rule.T_free == 10
    tr.fit(stop_after=1)
    assert bool(tr.store.seen.all())
    stored = [s.clone() for s in tr.store.states]
    spy = Spy(tr.persist_rule)
    tr.persist_rule = spy
    data_stream = torch.Generator()
    data_stream.set_state(tr.streams.data.get_state())  # the order epoch 2 will draw
    order = torch.randperm(len(tr.data.y_train), generator=data_stream)
    tr.fit(stop_after=2)
    first = order[:TINY["batch_size"]]
    assert spy.inits and all(i is not None for i in spy.inits)
    for got, want in zip(spy.inits[0], stored):
        assert torch.equal(got, want[first])
    assert tr.store.nbytes == len(tr.data.y_train) * (24 + 100) * 4


def test_resume_with_stored_states_is_exact(digits, tmp_path):
    straight = Trainer(Config(**TINY), digits, progress=False)
    straight.fit()
    out = str(tmp_path / "run")
    Trainer(Config(**TINY), digits, out, progress=False).fit(stop_after=2)
    resumed = Trainer.from_run(out)
    assert bool(resumed.store.seen.all())
    resumed.fit()
    for a, b in zip(straight.net.parameters(), resumed.net.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight.store.states, resumed.store.states):
        assert torch.equal(a, b)


def test_persistent_free_phases_are_refused_where_they_do_not_apply(digits):
    with pytest.raises(ValueError, match="T_free_persist"):
        Config(T_free_persist=-1).validate()
    with pytest.raises(ValueError, match="persist_free"):
        Config(persist_free=1).validate()
