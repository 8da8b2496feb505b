"""Output costs ``L(xi_out, y)``: the nudge of eq. 8 is ``-beta * dL/dxi_out``.

A cost knows its per-sample value and its gradient in the output *state*. Both costs below are
the same squared error inside the state box ``[0, 1/kappa]`` (where ``rho(xi) = kappa xi``), up to
the factor ``kappa^2``; that factor is the nudge's scale, and it matters (GUIDE section 1):

- ``StateMSE`` (``cost: state``, the default): ``L = 1/2 ||xi_out - y / kappa||^2``, the paper's
  cost on ``xi_out`` (eq. 8), with the one-hot target scaled by ``1/kappa`` so it is reachable
  inside the box. Curvature 1 in ``xi``, so the output's step factor in a nudged phase is
  ``1 - lam (1 + beta)``: stable for ``|beta| < 1`` at ``lam = 0.5`` in both nudge directions.
- ``RateMSE`` (``cost: rate``): ``L = 1/2 ||rho(xi_out) - y||^2`` on the output rate. Curvature
  ``kappa^2`` in ``xi``, so ``beta`` acts ``kappa^2`` times larger; at ``kappa = 2`` the
  ``-beta`` phase is anti-stable for ``beta > 0.25`` (``lam = 0.5``) and the EP estimate at the
  paper's ``beta = 0.5`` points uphill (docs/formulation.md).

A cost reads the output through the network's neuron model (``neurons.py``): its rate and the
top of its state box. Adding a cost: subclass :class:`Cost` in a new file, implement ``value``
and ``grad``, and register it with ``@COSTS.register("name")``; ``cost: name`` then selects it.
"""
from __future__ import annotations

import torch

from stochep.registry import CONFIG_CHECKS, COSTS


class Cost:
    """Per-sample cost on the output layer and its gradient in the output state."""

    name = "cost"

    def value(self, xi_out: torch.Tensor, target: torch.Tensor, neuron) -> torch.Tensor:
        """``L`` per sample, shape ``[B]``; ``target`` is the (inflated) one-hot ``[B, n_out]``."""
        raise NotImplementedError

    def grad(self, xi_out: torch.Tensor, target: torch.Tensor, neuron) -> torch.Tensor:
        """``dL / dxi_out``, shaped like ``xi_out``."""
        raise NotImplementedError


@COSTS.register("state")
class StateMSE(Cost):
    """``1/2 ||xi_out - y / kappa||^2``: the paper's cost on the output state (eq. 8)."""

    def value(self, xi_out, target, neuron):
        return 0.5 * (xi_out.flatten(1) - target * neuron.high).pow(2).sum(1)

    def grad(self, xi_out, target, neuron):
        return xi_out - target.view_as(xi_out) * neuron.high


@COSTS.register("rate")
class RateMSE(Cost):
    """``1/2 ||rho(xi_out) - y||^2``: squared error on the output rate."""

    def value(self, xi_out, target, neuron):
        return 0.5 * (neuron.rate(xi_out).flatten(1) - target).pow(2).sum(1)

    def grad(self, xi_out, target, neuron):
        return neuron.gain * (neuron.rate(xi_out) - target.view_as(xi_out))


def make_cost(name: str) -> Cost:
    return COSTS[name]()


@CONFIG_CHECKS.register("cost")
def check_cost(cfg) -> None:
    """``cost`` names a registered output cost."""
    COSTS[cfg.cost]
