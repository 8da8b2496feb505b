"""Learning rules: how a batch becomes ``p.grad`` (one registry for config, CLI, trainer, tools).

A rule is built from the run config and the run's random streams, and has one method::

    rule = RULES[cfg.algo].from_config(cfg, streams)
    result = rule.gradients(net, x, y)     # writes p.grad for every parameter

so any ``torch.optim`` optimizer applies the update. ``rule.infer(net, x, dynamics, steps,
rng, average)`` gives the states a prediction is read from and ``rule.predict(...)`` the classes; by
default the free phase (a rule that trains a different computation, e.g. a feedforward pass,
overrides them so evaluation matches training; ``frames.FrameSequence`` sums over frames).

The built-in rules are EP (``ep.py``, eq. 9/14/22), surrogate-gradient BPTT (``bptt.py``),
feedback alignment (``fa.py``) and implicit differentiation (``implicit.py``). Adding one:
subclass :class:`LearningRule` in a new file and decorate it with ``@RULES.register("name")``;
then ``--algo name`` trains with it and ``stochep memory`` measures it. Every rule, built in or
not, declares its settings in :attr:`LearningRule.options` and reads them from its section of the
config's ``rules:`` mapping (:meth:`LearningRule.settings`).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from stochep.registry import CONFIG_CHECKS, RULES


class TrainingDiverged(RuntimeError):
    """NaN or inf appeared in states, gradients or weights."""


@dataclass
class StepResult:
    """What a rule reports about one batch, besides the gradients it wrote."""

    free: list[torch.Tensor]  # states the prediction is read from (the free equilibrium)
    loss: torch.Tensor  # per-sample cost at ``free``
    nudged: list[torch.Tensor] | None = None  # first nudged phase's contrast state, if any
    scores: torch.Tensor | None = None  # class scores to predict from (default: of free[-1])


class LearningRule:
    """Interface of a learning rule (see the module docstring)."""

    name = "rule"
    # The rule's own settings and their defaults. A run sets them in the rule's section of the
    # config's ``rules:`` mapping (``rules: {bptt: {clip: 1.0}}``, ``--set rules.bptt.clip=1``).
    options: ClassVar[dict[str, Any]] = {}
    # The section the rule trains with when the config has none for it: option values and config
    # fields (``lr``, ``batch_size``...) that override the run's when this rule trains. A section
    # in the config replaces this one as a whole.
    tuned: ClassVar[dict[str, Any]] = {}
    # Keys of earlier config versions: top-level option keys -> option, and whether the rule had
    # a top-level override section under its own name (``training.config.upgrade_keys``).
    # True for a rule that steps the run's optimizer inside a batch (continual EP, at every
    # nudged step): the trainer passes ``optimizer=`` to :meth:`gradients` and its own step
    # after it is the batch's last
    steps_optimizer: ClassVar[bool] = False
    legacy_keys: ClassVar[dict[str, str]] = {}
    legacy_section: ClassVar[bool] = False

    @classmethod
    def section(cls, cfg) -> dict[str, Any]:
        """This rule's section of ``cfg.rules``, or its :attr:`tuned` section if there is none."""
        return dict(cfg.rules.get(cls.name, cls.tuned))

    @classmethod
    def settings(cls, cfg) -> dict[str, Any]:
        """The rule's options for ``cfg``: :attr:`options` updated by its section."""
        sec = cls.section(cfg)
        return {k: sec.get(k, v) for k, v in cls.options.items()}

    @classmethod
    def config_overrides(cls, cfg) -> dict[str, Any]:
        """The config fields the rule's section overrides when it trains."""
        return {k: v for k, v in cls.section(cfg).items() if k not in cls.options}

    @classmethod
    def check_config(cls, cfg) -> None:
        """Raise ``ValueError`` if the rule cannot train the (resolved) run ``cfg`` describes."""

    @classmethod
    def from_config(cls, cfg, streams) -> LearningRule:
        """The rule ``cfg`` describes (options from :meth:`settings`), drawing its randomness
        from ``streams`` (``rng.Streams``)."""
        raise NotImplementedError

    @classmethod
    def prepare_network(cls, net, cfg) -> None:
        """Add what the rule needs to a network just built from ``cfg`` (resolved), before
        calibration, the optimizer and any checkpoint load (vector-field EP's feedback
        weights); nothing by default."""

    def epoch_metrics(self, net) -> dict:
        """Per-epoch figures the rule reports about ``net`` (added to each ``metrics.jsonl``
        row; e.g. vector-field EP's ``feedback_angle``); none by default."""
        return {}

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        """Write ``p.grad`` for batch ``(x, y)``; ``init``: the free phase's initial states
        (zeros when ``None``; a warm start as in eq. 18)."""
        raise NotImplementedError

    def infer(self, net, x: torch.Tensor, dynamics, steps: int, rng,
              average: int = 1) -> list[torch.Tensor]:
        """States the prediction for ``x`` is read from: the free phase's final states, or with
        ``average = k > 1`` their mean over its last ``k`` steps (config ``readout_average``)."""
        return dynamics.relax(net, x, net.zero_states(len(x), x.dtype), steps, rng,
                              average_last=average).average

    def scores(self, net, x: torch.Tensor, dynamics, steps: int, rng,
               average: int = 1) -> torch.Tensor:
        """Class scores ``[B, n_classes]`` for ``x``: the readout of :meth:`infer`'s output
        states (the mean rate of each class's output group, section 3.4)."""
        return net.class_scores(self.infer(net, x, dynamics, steps, rng, average)[-1])

    def predict(self, net, x: torch.Tensor, dynamics, steps: int, rng,
                average: int = 1) -> torch.Tensor:
        """Predicted classes for ``x``: the largest of :meth:`scores`."""
        return self.scores(net, x, dynamics, steps, rng, average).argmax(1)


@CONFIG_CHECKS.register("rules")
def check_rules(cfg) -> None:
    """The learning rules' section: ``rules`` maps registered rule names to their sections, whose
    keys are each rule's options or config fields it overrides; the active rule (``algo``) can
    train the resolved config and builds from it; every other registered rule builds from its
    section as this config sets it, so a bad value never waits for the day that rule runs."""
    if not isinstance(cfg.rules, dict) or not all(isinstance(v, dict)
                                                  for v in cfg.rules.values()):
        raise ValueError(f"rules must map a rule's name to a mapping of its settings, "
                         f"got {cfg.rules!r}")
    for name in cfg.rules:
        RULES[name]  # an unknown rule name is one line
    fields = {f.name for f in dataclasses.fields(cfg)}
    for name in RULES:
        rule = RULES[name]
        for k in rule.section(cfg):
            if k in ("algo", "rules", "preset"):
                raise ValueError(f"rules.{name}.{k} cannot be overridden")
            if k not in rule.options and k not in fields:
                known = ", ".join(rule.options) or "none"
                raise ValueError(f"unknown setting rules.{name}.{k} (its options: {known}; "
                                 "or a config key it overrides)")
    active = cfg.resolved()
    RULES[active.algo].check_config(active)
    RULES[active.algo].from_config(active, None)
    for name in RULES:  # the other rules' options as this config sets them, untuned
        if name != cfg.algo:
            rule = RULES[name]
            probe = copy.copy(cfg)
            probe.rules = {**cfg.rules, name: {k: v for k, v in cfg.rules.get(name, {}).items()
                                               if k in rule.options}}
            rule.from_config(probe, None)
