"""Vector-field EP (``vf``): EP with separate feedback weights (Scellier et al. 2018, "Generalization
of Equilibrium Propagation to vector field dynamics"; Ernoult et al. 2020; Laborieux et al. 2021,
whose ``same_update`` variant this is).

The down drive of interaction ``k`` (``k >= 1``; the input is clamped, so interaction 0 needs
none) reads its own feedback ``B_k`` instead of ``W_k^T``::

    drive_k = W_{k-1} s_{k-1} + B_k^T s_{k+1} + b_k

The dynamics then follow a vector field that is no energy's gradient; the EP phases and
estimators are unchanged (``ep.py``). The update of each forward weight is its EP contrast
(eq. 9/14/22) at the states of the vector-field dynamics, and a learned feedback receives the
same contrast as its forward weight, so ``B_k - W_k`` changes only by the optimizer's own
per-weight scaling and decay, and the forward/feedback angle closes as the weights grow
(Kolen-Pollack style). Options (``rules.vf``):

- ``feedback``: ``learned`` (a parameter, updated as above) or ``fixed`` (a buffer: saved with
  the model, never updated: feedback-alignment-style dynamics);
- ``decay``: each batch, before its phases, every forward weight with a learned feedback and its
  feedback shrink by the factor ``1 - decay`` (Kolen and Pollack 1994; local: each synapse
  decays itself; biases and the first interaction untouched). With the same updates on both,
  ``B_k - W_k`` then shrinks by that factor per batch while the learned part of the weights is
  restored by the updates: the lever that closes the angle within a short run;
- ``feedback_init``: ``random`` (drawn from the weight's own init distribution, seeded by the
  run's seed: ``fa.make_feedback``) or ``forward`` (a copy of ``W_k``: with ``learned`` the run
  is exactly EP's, which ``tests/test_vf.py`` checks bit for bit).

The angle between ``W_k`` and ``B_k`` (:func:`feedback_angles`) is logged per layer per epoch
(``metrics.jsonl`` key ``feedback_angle``, and the progress line). Dense and conv interactions
support feedback (``Interaction.set_feedback``); others are refused in one line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from stochep.engine.rng import Streams
from stochep.rules.base import RULES, StepResult
from stochep.rules.ep import EP
from stochep.rules.fa import make_feedback
from stochep.validation import check_choice, check_positive

FEEDBACK = ("learned", "fixed")
FEEDBACK_INIT = ("random", "forward")


def feedback_angles(net) -> list[float]:
    """Angle in degrees between the forward weights ``W_k`` and the feedback ``B_k`` of every
    interaction that has feedback, bottom to top: ``acos(<W, B> / (|W| |B|))``."""
    out = []
    for inter in net.interactions:
        if getattr(inter, "has_feedback", False):
            w = inter.weight.detach().double().flatten()
            b = inter.down_weight().detach().double().flatten()
            cos = (w @ b) / (w.norm() * b.norm()).clamp_min(1e-300)
            out.append(math.degrees(math.acos(max(-1.0, min(1.0, cos.item())))))
    return out


def add_feedback(net, mode: str = "learned", init: str = "random", seed: int = 0,
                 init_scale: float = 1.0) -> None:
    """Give every interaction above the first its own feedback weights (module docstring)."""
    check_choice("rules.vf.feedback", mode, FEEDBACK)
    check_choice("rules.vf.feedback_init", init, FEEDBACK_INIT)
    for k, inter in enumerate(net.interactions[1:], 1):
        if not getattr(inter, "supports_feedback", False):
            raise ValueError(f"algo vf: interaction {k} ({type(inter).__name__}) does not support "
                             "separate feedback weights (dense and conv do)")
    drawn = make_feedback(net, seed, init_scale) if init == "random" else None
    for k, inter in enumerate(net.interactions[1:], 1):
        b = drawn[k] if drawn is not None else inter.weight.detach()
        inter.set_feedback(b, learned=mode == "learned")


@RULES.register("vf")
@dataclass(frozen=True)
class VF(EP):
    """EP on the vector-field dynamics of a network with feedback weights (module docstring).

    The rule's phases and gradients are EP's; the feedback lives in the network, added by
    :meth:`prepare_network` when the network is built.
    """

    feedback: str = "learned"
    feedback_init: str = "random"
    decay: float = 0.0

    options: ClassVar[dict] = {"feedback": "learned", "feedback_init": "random", "decay": 0.0}

    def __post_init__(self):
        super().__post_init__()
        check_choice("rules.vf.feedback", self.feedback, FEEDBACK)
        check_choice("rules.vf.feedback_init", self.feedback_init, FEEDBACK_INIT)
        if isinstance(self.decay, bool) or not isinstance(self.decay, (int, float)) \
                or not 0 <= self.decay < 1:
            raise ValueError(f"rules.vf.decay must be in [0, 1) (0: off), got {self.decay!r}")

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> VF:
        check_positive("beta", cfg.beta)
        o = cls.settings(cfg)
        return cls(cfg.beta, cfg.T_free, cfg.T_nudge, cfg.estimator, cfg.average_last,
                   cfg.shared_noise, EP.from_config(cfg).dynamics, cfg.dynamics_dtype, streams,
                   o["feedback"], o["feedback_init"], o["decay"])

    @classmethod
    def prepare_network(cls, net, cfg) -> None:
        o = cls.settings(cfg)
        add_feedback(net, o["feedback"], o["feedback_init"], cfg.seed, cfg.init_scale)

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        if not any(getattr(m, "has_feedback", False) for m in net.interactions[1:]):
            raise ValueError("algo vf: the network has no feedback weights (build it from a "
                             "config with algo vf, or call rules.vf.add_feedback)")
        if self.decay:
            with torch.no_grad():
                for inter in net.interactions[1:]:
                    if "feedback" in inter._parameters:
                        inter.weight.mul_(1 - self.decay)
                        inter.feedback.mul_(1 - self.decay)
        return super().gradients(net, x, y, init)

    def epoch_metrics(self, net) -> dict:
        return {"feedback_angle": feedback_angles(net)}

