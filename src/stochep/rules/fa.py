"""Feedback alignment (Lillicrap et al. 2014/2016): the learning rule ``fa`` (a baseline).

Feedback alignment is backprop with the transposed forward weights replaced by FIXED RANDOM
feedback matrices: the error reaches a layer's input through a random ``B`` of the weight's
shape instead of through ``W^T``; each weight's own gradient (error above times activity below)
is the ordinary one. It removes backprop's weight transport, but it is still NOT a local rule:
a global error is carried backwards layer by layer through a separate feedback pathway, and the
network runs a feedforward pass, not the energy relaxation EP learns from. The paper's Table 1b
lists it as non-local, with a binary 5C network at **71.48% (0.42) on CIFAR-10** against
81.33% for 5C with EP (the paper's figures, FA in their re-implementation; not reproduced here).

Feedforward reading (the same network objects, any interactions with a ``weight``: dense and
conv + max-pooling). Layer ``k`` is the EP free-phase fixed point ``xi = P(kappa (up + down))``
with the top-down term dropped, computed once, bottom to top::

    xi_k = P(kappa * drive_up_k(s_{k-1}, ctx_k))      s_0 = x,  P = clamp to [low, high]
    s_k  = B(rho(xi_k))                               spikes (rates for a mean-field neuron)

so the gain ``kappa`` DOES multiply the drive, as in eq. 7, and a layer's rate is
``rho = clamp(kappa^2 * drive, 0, 1)``: at ``kappa = 2`` a hard sigmoid of slope 4 in the drive.
The biases calibrated by ``calibrate.py`` on the relaxed network also set the feedforward pass's
starting rates (measured in docs/baselines.md, "FA and ID: measurements"). The
max-pooling indices ``ctx_k`` come from the rates below (``context``), as in the dynamics. The
spikes pass gradients straight through (eq. 6, ``Neuron.sample`` under autograd); the output
layer is not sampled: its state is the prediction (``net.predict``) and is trained on the
network's own cost (``net.loss``, batch mean). The rule's prediction (:meth:`FA.infer`, used by
evaluation) is the same pass, without autograd.

Backward: for each interaction, ``out = f(s.detach(), W) + (f(s, B) - sg f(s, B))`` where
``f`` is the interaction's ``drive_up``, evaluated a second time with the weight replaced by
``B`` and every other parameter detached (``torch.func.functional_call``). The value is
``f(s, W)``; ``d out / dW`` and ``d out / d bias`` are the ordinary ones; the gradient into
``s`` (and so into every lower layer) flows through ``B``. For ``B = W`` this is exactly
backprop of the feedforward pass (tested, dense and conv).

Feedback draw: ``B_k`` has ``W_k``'s shape and is drawn from ``W_k``'s own init distribution,
uniform(+-init_scale / sqrt(fan_in)) with ``fan_in = prod(W.shape[1:])`` (``nn.Linear`` /
``nn.Conv2d`` layout, as ``Dense`` and ``ConvPool`` draw), from a CPU ``torch.Generator``
seeded with ``seed + FEEDBACK_SEED_OFFSET``, bottom to top, in float64, then cast to the
weights' dtype and device. The feedback is therefore a pure function of the seed, init_scale
and the network's shapes: it is not stored in the model or the checkpoint, never in
``net.parameters()`` (the optimizer cannot touch it), and a resumed run regenerates exactly the
same tensors (a resume that changes ``seed`` would change them). Hopfield attention (its drive
depends on the layer it drives, so it has no feedforward reading) is refused with a
``ValueError``, as is a neuron with internal state.

Settings: none of its own; optimizer, lr, batch size, epochs and calibration are the run's
(``T_free``, ``dynamics_dtype`` and the dynamics options are unused: one pass, network dtype).
Measurements: docs/baselines.md, "FA and ID: measurements".
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from stochep.engine.rng import SpikeRNG, Streams
from stochep.rules.base import RULES, LearningRule, StepResult

FEEDBACK_SEED_OFFSET = 4099  # feedback generator seed = run seed + this


def _check_supported(net) -> None:
    if getattr(net.neuron, "stateful", False):
        raise ValueError(f"algo fa: neuron {net.neuron.name!r} keeps internal state across "
                         "steps; the feedforward pass needs a stateless neuron")
    for k, inter in enumerate(net.interactions):
        name = type(inter).__name__
        if getattr(inter, "binds_input", False):
            raise ValueError(f"algo fa: interaction {k} ({name}) is not supported: its drive "
                             "depends on the layer it drives, so it has no feedforward pass")
        if "weight" not in dict(inter.named_parameters(recurse=False)):
            raise ValueError(f"algo fa: interaction {k} ({name}) has no 'weight' parameter to "
                             "replace by random feedback; not supported")


def make_feedback(net, seed: int, init_scale: float) -> list[torch.Tensor]:
    """Fixed random feedback ``B_k`` for every interaction's weight (see the module docstring):
    a pure function of ``seed``, ``init_scale`` and the weights' shapes."""
    _check_supported(net)
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + FEEDBACK_SEED_OFFSET)
    out = []
    for inter in net.interactions:
        w = inter.weight
        bound = init_scale / math.sqrt(math.prod(w.shape[1:]))
        b = torch.rand(w.shape, generator=gen, dtype=torch.float64).mul_(2 * bound).sub_(bound)
        out.append(b.to(dtype=w.dtype, device=w.device))
    return out


class _DriveUp(nn.Module):
    """``inter.drive_up`` as a module's forward, for ``functional_call``."""

    def __init__(self, inter):
        super().__init__()
        self.inter = inter

    def forward(self, s, ctx):
        return self.inter.drive_up(s, ctx)


def _drive(inter, s: torch.Tensor, ctx, b: torch.Tensor | None) -> torch.Tensor:
    """``drive_up(s)`` whose gradient into ``s`` goes through ``b`` instead of the weight
    (``b = None``, or ``s`` without grad: the plain drive)."""
    if b is None or not torch.is_grad_enabled() or not s.requires_grad:
        return inter.drive_up(s, ctx)
    params = {f"inter.{n}": p.detach() for n, p in inter.named_parameters()}
    params["inter.weight"] = b.detach()
    fb = functional_call(_DriveUp(inter), params, (s, ctx))
    return inter.drive_up(s.detach(), ctx) + (fb - fb.detach())


def feedforward(net, x: torch.Tensor, rng: SpikeRNG | None = None,
                feedback: Sequence[torch.Tensor | None] | None = None) -> list[torch.Tensor]:
    """States ``xi_1 .. xi_N`` of the feedforward pass (module docstring), bottom to top.

    ``feedback``: one tensor per interaction through which the gradient into that layer's input
    flows (``None``: plain backprop through the weights). ``rng`` draws the spikes (only for a
    stochastic neuron). Autograd follows the caller's grad mode.
    """
    neuron = net.neuron
    inters = net.interactions
    feedback = [None] * len(inters) if feedback is None else list(feedback)
    if len(feedback) != len(inters):
        raise ValueError(f"feedback needs one tensor per interaction ({len(inters)}), "
                         f"got {len(feedback)}")
    states, s, r = [], x, x
    for k, inter in enumerate(inters):
        ctx = inter.context(r)
        drive = _drive(inter, s, ctx, feedback[k]).view(x.shape[0], *inter.out_shape)
        xi = (neuron.gain * drive).clamp(neuron.low, neuron.high)  # P, differentiably
        states.append(xi)
        if k + 1 < len(inters):  # the output layer is read as a state, not sampled
            r = neuron.rate(xi)
            s = neuron.sample([r], rng)[0]
    return states


def fa_gradients(net, x: torch.Tensor, y: torch.Tensor,
                 feedback: Sequence[torch.Tensor | None] | None,
                 rng: SpikeRNG | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Write ``p.grad`` (zeros first) from the batch-mean cost of the feedforward pass, backprop
    with ``feedback`` in place of the transposed weights; returns (states, per-sample loss).
    ``feedback = [W.detach() ...]`` gives exact backprop, ``None`` too."""
    net.check_batch(x, y)
    target = net.target(y, x.dtype)
    with torch.enable_grad():
        states = feedforward(net, x, rng, feedback)
        loss = net.loss(states[-1], target)
        params = list(net.parameters())
        grads = torch.autograd.grad(loss.mean(), params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
    return [s.detach() for s in states], loss.detach()


@RULES.register("fa")
@dataclass(frozen=True)
class FA(LearningRule):
    """Feedback alignment on the network's feedforward pass (module docstring); the feedback
    is drawn from ``seed`` and ``init_scale``, ``streams`` supplies the spikes."""

    seed: int = 0
    init_scale: float = 1.0
    streams: Streams | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> FA:
        return cls(cfg.seed, cfg.init_scale, streams)

    def feedback(self, net) -> list[torch.Tensor]:
        """The fixed random feedback of ``net`` (drawn once per shapes/dtype/device, cached)."""
        w = net.interactions[0].weight
        key = (tuple(tuple(m.weight.shape) for m in net.interactions if hasattr(m, "weight")),
               w.dtype, w.device)
        if key not in self._cache:
            self._cache[key] = make_feedback(net, self.seed, self.init_scale)
        return self._cache[key]

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        """``init`` is ignored: a feedforward pass has no initial state."""
        states, loss = fa_gradients(net, x, y, self.feedback(net),
                                    self.streams and self.streams.spike)
        return StepResult(states, loss)

    def infer(self, net, x: torch.Tensor, dynamics, steps: int, rng,
              average: int = 1) -> list[torch.Tensor]:
        """The same feedforward pass without autograd (``dynamics``, ``steps`` and ``average``
        unused: a feedforward pass has no phase to average over)."""
        _check_supported(net)
        with torch.no_grad():
            return feedforward(net, x, rng)
