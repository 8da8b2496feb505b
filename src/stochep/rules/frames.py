"""Temporal EP on frame sequences (appendix A, eq. 18): any rule, one frame at a time.

An event sample is a sequence of frames ``x [B, T, *frame]``. For each frame ``tau`` the wrapped
rule (EP: a free phase, then the ``+beta`` and ``-beta`` nudged phases from the free equilibrium,
the eq. 22 gradient) runs on that frame, its free phase warm-started from the previous frame's
free equilibrium (eq. 18)::

    xi^{tau+1, 0} = gamma * xi^{tau, *}          (the first frame starts from zero)

Two ways to apply the updates (``frame_update``):

- ``"sample"``: one optimizer step per batch on the mean of the frames' gradients;
- ``"frame"``: one optimizer step after every frame (the trainer's step is the last one).

The prediction (training and evaluation) is the class whose output group has the largest rate
summed over the frames' free equilibria; evaluation runs free phases only.

A warm-started frame starts near its equilibrium, so its phases can be shorter: ``T_free_warm``
(config; 0 keeps ``T_free``) sets the free phase of every frame after the first (``warm_rule``
and ``warm_steps`` here).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stochep.registry import CONFIG_CHECKS
from stochep.rules.base import LearningRule, StepResult
from stochep.validation import check_choice, check_int_at_least

FRAME_UPDATES = ("sample", "frame")


def check_gamma(gamma) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
        raise ValueError(f"gamma (warm start, eq. 18) must be in [0, 1], got {gamma!r}")


@CONFIG_CHECKS.register("frames")
def check_frames(cfg) -> None:
    """The frame sequences' section: ``gamma``, ``frame_update``, ``T_free_warm``."""
    check_gamma(cfg.gamma)
    check_choice("frame_update", cfg.frame_update, FRAME_UPDATES)
    check_int_at_least("T_free_warm", cfg.T_free_warm, 0)


def _warm(states: list[torch.Tensor], gamma: float) -> list[torch.Tensor] | None:
    """Eq. 18: the next frame's initial states (``None``, i.e. zeros, when gamma is 0)."""
    return None if gamma == 0 else [gamma * s for s in states]


@dataclass(frozen=True)
class FrameSequence(LearningRule):
    """``rule`` applied frame by frame with warm starts (module docstring)."""

    rule: LearningRule
    gamma: float = 0.3
    frame_update: str = "sample"
    warm_rule: LearningRule | None = None  # the rule for frames after the first (shorter phases)
    warm_steps: int | None = None  # evaluation's free-phase steps after the first frame

    def __post_init__(self):
        check_gamma(self.gamma)
        check_choice("frame_update", self.frame_update, FRAME_UPDATES)

    @property
    def name(self) -> str:
        return self.rule.name

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None, optimizer=None) -> StepResult:
        if x.dim() < 3:
            raise ValueError(f"frame sequences are [batch, frames, ...], got shape {tuple(x.shape)}")
        n = x.shape[1]
        params = list(net.parameters())
        total = [torch.zeros_like(p) for p in params] if self.frame_update == "sample" else None
        scores, loss, state = 0.0, 0.0, init
        for t in range(n):
            rule = self.rule if t == 0 or self.warm_rule is None else self.warm_rule
            res = rule.gradients(net, x[:, t], y, init=state)
            scores = scores + net.class_scores(res.free[-1])
            loss = loss + res.loss
            state = _warm(res.free, self.gamma)
            if total is not None:
                for acc, p in zip(total, params):
                    acc.add_(p.grad)
            elif optimizer is not None and t < n - 1:
                optimizer.step()
        if total is not None:
            for acc, p in zip(total, params):
                p.grad = acc.div_(n)
        return StepResult(free=res.free, loss=loss / n, nudged=res.nudged, scores=scores)

    def infer(self, net, x, dynamics, steps, rng, average: int = 1):
        return self._free_phases(net, x, dynamics, steps, rng, average)[0]

    def scores(self, net, x, dynamics, steps, rng, average: int = 1) -> torch.Tensor:
        return self._free_phases(net, x, dynamics, steps, rng, average)[1]

    def _free_phases(self, net, x, dynamics, steps, rng, average: int = 1):
        """Free phases only, warm-started frame to frame; (last states, summed class scores).
        Each frame's scores are read from its states averaged over its last ``average`` steps."""
        state, scores = None, 0.0
        for t in range(x.shape[1]):
            frame = x[:, t]
            start = net.zero_states(len(frame), frame.dtype) if state is None else state
            n = steps if state is None or self.warm_steps is None else self.warm_steps
            free = dynamics.relax(net, frame, start, n, rng, average_last=average)
            scores = scores + net.class_scores(free.average[-1])
            state = _warm(free.final, self.gamma)
        return free.average, scores
