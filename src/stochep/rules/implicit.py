"""Implicit differentiation on the equilibrium state, the learning rule ``id`` (after Xiao et al.
2021, "Training feedback spiking neural networks by implicit differentiation on the equilibrium
state", NeurIPS 2021). The paper (Table 1b, 5C, 0.39 std) reports
76.25% on CIFAR-10 for ID (the paper's number, not one of this code).

The forward pass is a black-box solver of a fixed-point equation; the gradient is taken on the
equation, not through the solver. With ``f`` one mean-field step of the dynamics
(``dynamics.step``; eq. 7 with rates instead of spikes) and ``a`` all layer states:

    a* = f(a*, W)                                   (the free equilibrium)
    dL/dW = g^T df/dW (a*, W),   g = J^T g + dL/da,   J = df/da (a*, W)

i.e. ``(I - J^T) g = dL/da``, with ``L`` the batch-mean output cost ``net.loss`` of ``a*``. One
batch:

1. the network's own (spiking) free phase runs ``T_free`` steps without autograd; ``a*`` is the
   state averaged over its last ``average_last`` steps (the paper's "average firing rates"
   equilibrium; the same key as EP's averaged contrasts, default 10);
2. one differentiable mean-field step ``a1 = f(a*, W)`` from ``a*`` (detached leaves) builds the
   only autograd graph: memory does not grow with ``T_free``;
3. ``g`` solves the backward fixed point by damped fixed-point iteration,
   ``g <- g + d (J^T g + dL/da - g)``, one vector-Jacobian product per iteration, from ``g = 0``,
   until the relative residual ``|J^T g + dL/da - g| / |dL/da|`` is below ``rules.id.tol`` or
   ``rules.id.iters`` products are spent (the last iterate is then used: a truncated Neumann series);
4. ``p.grad = g^T df/dW``: ``a1`` backpropagated with ``grad_outputs = g``.

Options (config keys): ``rules.id.iters`` (default 10), ``rules.id.tol`` (1e-4, relative residual),
``rules.id.damping`` ``d`` in (0, 1] (1: plain iteration). Plain iteration converges exactly when the
mean-field step is locally contractive at ``a*`` (spectral radius of ``J`` below 1); damping
also tames oscillating modes (eigenvalues of ``J`` below -1), never growing ones (above +1). A
solve that produces NaN/inf or whose residual grows past ``DIVERGED`` (1e3) times ``|dL/da|`` raises
:class:`~stochep.rules.base.TrainingDiverged` in one line.

When the solve does not converge within ``rules.id.iters``, ``g`` is the truncated Neumann series
``sum_{k < iters} (J^T)^k dL/da``: the gradient of ``rules.id.iters`` mean-field steps linearised at
``a*`` (a "phantom gradient"). That is the regime of the digits default network: at the averaged
spiking state the neurons sit inside the state box, where the coupling ``kappa^2 W`` is strong
enough that ``J`` has a growing mode (spectral radius above 1), so the exact implicit gradient,
an unstable fixed point's, exists but does not train. The budget then acts as a truncation, and
a short one trains best; hence the default 10 (measurements: docs/baselines.md, "FA and ID:
measurements").

Choices: the differentiable step is the mean-field step (``net.neuron.mean_field()``), so the
Jacobian is that of the rate dynamics (the spikes' straight-through surrogate is never used);
the equilibrium is the time-averaged spiking state, which is only approximately a fixed point of
``f``. For a settled mean-field network with a contractive step and a converged solve the
gradient is exact: it equals BPTT through the settled dynamics (``tests/test_id.py``); for a spiking network it is the implicit gradient of the
mean-field equilibrium evaluated at the averaged spiking state. Evaluation runs the default
``infer`` (the spiking free phase, final state), as in training. ``dynamics_dtype`` is ignored:
the rule runs in the network's dtype.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from stochep.engine.dynamics import Dynamics, phase_constants, step
from stochep.engine.rng import Streams
from stochep.rules.base import RULES, LearningRule, StepResult, TrainingDiverged
from stochep.validation import check_int_at_least

DIVERGED = 1e3  # relative residual past which a solve is abandoned as diverging


@RULES.register("id")
@dataclass(frozen=True)
class ID(LearningRule):
    """The implicit-differentiation rule and its settings (module docstring)."""

    T_free: int
    average_last: int = 10
    iters: int = 10
    tol: float = 1e-4
    damping: float = 1.0
    dynamics: Dynamics | None = field(default=None, compare=False)
    streams: Streams | None = field(default=None, compare=False)

    def __post_init__(self):
        check_options(self.T_free, self.average_last, self.iters, self.tol, self.damping)

    options: ClassVar[dict] = {"iters": 10, "tol": 1e-4, "damping": 1.0}
    legacy_keys: ClassVar[dict] = {f"id_{k}": k for k in options}

    @classmethod
    def from_config(cls, cfg, streams: Streams | None = None) -> ID:
        o = cls.settings(cfg)
        return cls(cfg.T_free, cfg.average_last, o["iters"], o["tol"], o["damping"],
                   Dynamics.from_config(cfg), streams)

    def gradients(self, net, x: torch.Tensor, y: torch.Tensor,
                  init: list[torch.Tensor] | None = None) -> StepResult:
        return id_gradients(net, x, y, self, self.streams and self.streams.spike,
                            self.dynamics, init)


def check_options(T_free, average_last, iters, tol, damping) -> None:
    """One-line errors for the rule's settings, named as their config keys."""
    check_int_at_least("T_free", T_free, 1)
    check_int_at_least("average_last", average_last, 1)
    check_int_at_least("rules.id.iters", iters, 1)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"rules.id.tol must be in (0, 1) (relative residual), got {tol!r}")
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) \
            or not 0 < damping <= 1:
        raise ValueError(f"rules.id.damping must be in (0, 1] (1: plain fixed-point iteration), "
                         f"got {damping!r}")


def _norm(ts: list[torch.Tensor]) -> float:
    return math.sqrt(sum(t.double().pow(2).sum().item() for t in ts))


@dataclass
class Solve:
    """The backward fixed point's solution and how it was reached."""

    g: list[torch.Tensor]
    iters: int  # vector-Jacobian products spent
    residual: float  # |J^T g + b - g| / |b| of the returned g


def solve_adjoint(vjp: Callable[[list[torch.Tensor]], list[torch.Tensor]],
                  b: list[torch.Tensor], iters: int = 10, tol: float = 1e-4,
                  damping: float = 1.0) -> Solve:
    """Solve ``g = J^T g + b`` by damped fixed-point iteration; ``vjp(g)`` returns ``J^T g``.

    Starts from ``g = 0`` (whose residual is ``b``); stops once the relative residual is at most
    ``tol``, or after ``iters`` products, returning the last iterate whose residual was measured
    (then a truncated Neumann series, module docstring). Raises
    :class:`~stochep.rules.base.TrainingDiverged` on NaN/inf or a relative residual above
    ``DIVERGED``.
    """
    bn = _norm(b)
    if bn == 0.0:
        return Solve([torch.zeros_like(t) for t in b], 0, 0.0)
    g = [damping * t for t in b]
    rel, k = 1.0, 0
    for k in range(1, iters + 1):
        r = [v + bi - gi for v, bi, gi in zip(vjp(g), b, g)]
        rel = _norm(r) / bn
        if not math.isfinite(rel) or rel > DIVERGED:
            _diverged(rel, k)
        if rel <= tol or k == iters:
            break
        g = [gi + damping * ri for gi, ri in zip(g, r)]
    return Solve(g, k, rel)


def _diverged(rel: float, k: int):

    raise TrainingDiverged(
        f"id: the backward fixed point g = J^T g + dL/da diverged (relative residual {rel:.3g} "
        f"after {k} iterations): the mean-field step is far from contractive at the free "
        "equilibrium; lower lr, lam or rules.id.iters, or set rules.id.damping < 1")


def equilibrium_step(net, x: torch.Tensor, states: list[torch.Tensor]
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(a, f(a, W))``: the states as fresh leaves requiring grad and one differentiable
    mean-field step from them (call under ``torch.enable_grad``)."""
    mf = net.neuron.mean_field()
    leaves = [s.detach().clone().requires_grad_(True) for s in states]
    consts = phase_constants(net, x, mf)
    return leaves, step(net, consts, leaves, None, neuron=mf)[0]


def id_gradients(net, x: torch.Tensor, y: torch.Tensor, rule: ID, rng=None,
                 dynamics: Dynamics | None = None, init: list[torch.Tensor] | None = None,
                 ) -> StepResult:
    """Write ``p.grad`` by implicit differentiation at the free equilibrium (module docstring).

    ``rng`` supplies the free phase's spikes; ``init`` its initial states (default zeros).
    """
    net.check_batch(x, y)
    target = net.target(y, x.dtype)
    dyn = dynamics or Dynamics()
    with torch.no_grad():
        start = net.zero_states(x.shape[0], x.dtype) if init is None else \
            [s.to(x.dtype) for s in init]
        star = dyn.relax(net, x, start, rule.T_free, rng,
                         average_last=rule.average_last).average
    params = list(net.parameters())
    with torch.enable_grad():
        leaves, a1 = equilibrium_step(net, x, star)
        loss = net.loss(leaves[-1], target)
        b = torch.autograd.grad(loss.mean(), leaves, allow_unused=True)
        b = [torch.zeros_like(s) if d is None else d for s, d in zip(leaves, b)]

        def vjp(g):
            out = torch.autograd.grad(a1, leaves, g, retain_graph=True, allow_unused=True)
            return [torch.zeros_like(s) if d is None else d for s, d in zip(leaves, out)]

        sol = solve_adjoint(vjp, b, rule.iters, rule.tol, rule.damping)
        grads = torch.autograd.grad(a1, params, sol.g, allow_unused=True)
    for p, gp in zip(params, grads):
        p.grad = torch.zeros_like(p) if gp is None else gp
    return StepResult(free=[s.detach() for s in star], loss=loss.detach())
