"""Three parts from outside stochep, as docs/extending.md builds them: a neuron, a rule with an
option and a dataset with an option. Train with them from the plain command line:

    stochep --plugin docs/examples/my_parts.py train --set neuron=sigbern \\
        --algo ep-random-beta --set rules.ep-random-beta.spread=0.5 --dataset blobs \\
        --set data_options.n_per_class=200
"""
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from stochep import EP, NEURONS, RULES, Dataset, NeuronModel
from stochep.data import DATASETS, DatasetSource


@NEURONS.register("sigbern")
@dataclass(frozen=True)
class SigmoidBernoulli(NeuronModel):
    """Fires with probability ``sigmoid(slope * (xi - 0.5))`` on the state box [0, 1]. The
    dynamics take one gain per neuron model: the slope at the box's centre, ``slope / 4``."""

    slope: float = 4.0
    spikes: bool = True

    @property
    def stochastic(self):
        return self.spikes

    @property
    def gain(self):
        return self.slope / 4  # rho'(0.5)

    def rate(self, xi):
        return torch.sigmoid(self.slope * (xi - 0.5))

    def sample(self, rates, rng):
        if not self.spikes:
            return rates
        return [(rng.uniform(r.numel(), r.dtype).view_as(r) < r).to(r.dtype) for r in rates]

    def mean_field(self):
        return replace(self, spikes=False)


@RULES.register("ep-random-beta")
@dataclass(frozen=True)
class EPRandomBeta(EP):
    """EP whose nudge strength is drawn per batch from ``beta * U(1 - spread, 1 + spread)``."""

    spread: float = 0.5
    options: ClassVar[dict] = {"spread": 0.5}

    @classmethod
    def from_config(cls, cfg, streams=None):
        ep = EP.from_config(cfg, streams)
        return cls(**{f: getattr(ep, f) for f in ep.__dataclass_fields__},
                   spread=float(cls.settings(cfg)["spread"]))

    def gradients(self, net, x, y, init=None):
        u = torch.rand((), generator=self.streams.sign).item()  # checkpointed with the run
        beta = self.beta * (1 - self.spread + 2 * self.spread * u)
        return EP.gradients(replace(self, beta=beta), net, x, y, init)


@DATASETS.register("blobs")
class Blobs(DatasetSource):
    """Four Gaussian blobs in [0, 1]^16, ``n_per_class`` training samples each."""

    input_shape = (16,)
    n_classes = 4

    @classmethod
    def load(cls, data_dir=None, n_per_class: int = 100):
        g = torch.Generator().manual_seed(0)
        centers = torch.rand(4, 16, generator=g)

        def draw(n):
            y = torch.arange(4).repeat_interleave(n)
            x = (centers[y] + 0.15 * torch.randn(len(y), 16, generator=g)).clamp(0, 1)
            return x, y
        x_train, y_train = draw(int(n_per_class))
        x_test, y_test = draw(50)
        return Dataset("blobs", x_train, y_train, x_test, y_test, 4)
