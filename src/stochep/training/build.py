"""The objects of a run, built from its config: the one place the training layer turns config
fields into engine and rule objects (``config.py`` builds nothing).

    net, rule, opt, sched, streams = build_run(cfg, data)    # what a Trainer holds

Each part is found through its registry (``registry.py``): the neuron model (``NEURONS``), the
output cost (``COSTS``), the layers (``INTERACTIONS``, in ``models.build_network``) and the
learning rule (``RULES``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from stochep.engine.dynamics import Dynamics
from stochep.engine.neurons.base import build_neuron
from stochep.engine.rng import Streams
from stochep.registry import COSTS, NEURONS, RULES

from .optim import make_optimizer, make_scheduler

__all__ = ["Run", "build_cost", "build_dynamics", "build_neuron", "build_rule", "build_run",
           "build_training_rules", "in_force"]


def build_cost(cfg):
    """The output cost ``cfg.cost`` names."""
    return COSTS[cfg.cost]()


def build_dynamics(cfg) -> Dynamics:
    """How phases run: update order, early exit, compilation, pooling-index reuse."""
    return Dynamics.from_config(cfg)


def build_rule(cfg, streams: Streams | None = None):
    """The learning rule ``cfg.algo`` names, built from the config it trains (its section of
    ``rules:`` applied, :meth:`Config.resolved`), drawing its randomness from ``streams``."""
    cfg = cfg.resolved()
    return RULES[cfg.algo].from_config(cfg, streams)


def in_force(cfg) -> dict:
    """``cfg`` as a mapping with every part's option in force written out, defaults included:
    the active rule's whole section (``rules.<algo>``: each of its options) and the neuron's
    options (``neuron_options``: each parameter of the model that is not a top-level field).
    Loading it back gives the same run (what ``config.yaml`` holds)."""
    d = cfg.to_dict()
    rule = RULES[cfg.algo]
    d["rules"] = {**d["rules"], cfg.algo: {**rule.settings(cfg),
                                          **{k: v for k, v in rule.section(cfg).items()
                                             if k not in rule.options}}}
    model = NEURONS[cfg.neuron]
    params = inspect.signature(model).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not p.empty
                and p.name not in model.config_fields
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    d["neuron_options"] = {**defaults, **d["neuron_options"]}
    return d


def build_training_rules(cfg, streams: Streams, frames: bool = False, world_size: int = 1):
    """``(rule, persist_rule)``: the rule a Trainer steps with and, with ``persist_free``, the
    one for samples whose free phase starts from their stored state (``T_free_persist`` steps;
    else ``None``). For frame sequences (``frames``) the rule runs frame by frame, warm-started
    (eq. 18, ``FrameSequence``), with ``T_free_warm`` free steps after the first frame."""
    from stochep.rules import FrameSequence

    def with_T(T):
        return type(cfg).from_dict({**cfg.to_dict(), "T_free": T})

    rule = build_rule(cfg, streams)
    if frames and cfg.frame_update == "frame" and world_size > 1:
        raise ValueError("frame_update='frame' steps the optimizer inside each sample; "
                         "data-parallel training needs frame_update='sample'")
    if world_size > 1 and getattr(rule, "steps_optimizer", False):
        raise ValueError(f"algo {cfg.algo} steps the optimizer inside each batch; "
                         "data-parallel training averages one step per batch (use --nproc 1)")
    if frames:
        warm = build_rule(with_T(cfg.T_free_warm), streams) if cfg.T_free_warm else None
        rule = FrameSequence(rule, cfg.gamma, cfg.frame_update, warm, cfg.T_free_warm or None)
    persist = None
    if cfg.persist_free:
        if frames or world_size > 1:
            raise ValueError("persist_free works on static data in one process (not on "
                             "frame sequences, not data-parallel)")
        persist = build_rule(with_T(cfg.T_free_persist or cfg.T_free), streams)
    return rule, persist


@dataclass
class Run:
    """What a run trains: the network, the rule, the optimizer, its schedule, the streams."""

    net: torch.nn.Module
    rule: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    streams: Streams

    def __iter__(self):
        return iter((self.net, self.rule, self.optimizer, self.scheduler, self.streams))


def build_run(cfg, data, device: str | torch.device | None = None, rank: int = 0) -> Run:
    """The network for ``data``'s input shape and classes (weights seeded by ``cfg.seed``, not
    calibrated), the rule, the optimizer and scheduler, and the run's random streams (seeded
    by ``cfg.seed``; ``rank`` offsets the spike stream of a data-parallel rank), on ``device``
    (default ``cfg.device``). The Trainer adds calibration, the weight average and the loop."""
    from .models import build_network

    cfg = cfg.resolved()
    device = torch.device(device or cfg.device)
    net = build_network(cfg, data.input_shape, data.n_classes, data.embedding).to(device)
    streams = Streams(cfg.seed, device, rank)
    opt = make_optimizer(cfg, net)
    return Run(net, build_rule(cfg, streams), opt, make_scheduler(cfg, opt), streams)
