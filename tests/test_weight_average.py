"""The moving average of the weights that evaluation uses (``ema_decay``, weight_average.py)."""
import pytest
import torch
from helpers import TINY

from stochep.training.config import Config
from stochep.training.trainer import Trainer
from stochep.training.weight_average import WeightAverage

FAST = TINY


def test_average_follows_the_warmed_up_recursion():
    net = torch.nn.Linear(3, 2)
    ema = WeightAverage(net, 0.9)
    ref = [p.detach().clone() for p in net.parameters()]
    for n in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema.update(net)
        d = min(0.9, (1 + n) / (10 + n))
        ref = [d * r + (1 - d) * p.detach() for r, p in zip(ref, net.parameters())]
    for a, r in zip(ema.avg, ref):
        torch.testing.assert_close(a, r)
    assert ema.updates == 30


def test_applied_swaps_the_average_in_and_restores_the_raw_weights():
    net = torch.nn.Linear(3, 2)
    ema = WeightAverage(net, 0.5)
    with torch.no_grad():
        net.weight.add_(1.0)
    raw = net.weight.detach().clone()
    with ema.applied(net):
        assert torch.equal(net.weight, ema.avg[0]) and not torch.equal(net.weight, raw)
    assert torch.equal(net.weight, raw)


def test_evaluation_scores_the_averaged_weights_and_training_keeps_the_raw_ones(digits):
    tr = Trainer(Config(**FAST, ema_decay=0.99), digits, progress=False)
    tr.fit()
    raw = [p.detach().clone() for p in tr.net.parameters()]
    assert tr.ema.updates == -(-len(tr.data.y_train) // FAST["batch_size"])  # one per step
    assert any(not torch.equal(a, w) for a, w in zip(tr.ema.avg, raw))
    seen = []  # the weights the evaluation's free phases run with
    plain = tr._evaluate
    tr._evaluate = lambda *a: seen.append([p.detach().clone() for p in tr.net.parameters()]) \
        or plain(*a)
    acc = tr.evaluate(digits.x_test, digits.y_test)
    del tr._evaluate
    assert len(seen) == 1 and all(torch.equal(s, a) for s, a in zip(seen[0], tr.ema.avg))
    assert all(torch.equal(p, w) for p, w in zip(tr.net.parameters(), raw))  # restored
    with tr.ema.applied(tr.net):  # the same score as the average evaluated by hand
        tr.ema, ema = None, tr.ema
        assert tr.evaluate(digits.x_test, digits.y_test) == acc
        tr.ema = ema


def test_without_ema_decay_there_is_no_average(digits):
    assert Trainer(Config(**FAST), digits, progress=False).ema is None


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_invalid_decay_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="ema_decay must be in"):
        Config(ema_decay=bad).validate()
