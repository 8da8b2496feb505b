"""Deterministic sigma-delta neurons with step-size annealing (eq. 17; figure 3c, 3d).

After O'Connor et al. 2019 ("Training a spiking neural network with equilibrium propagation").
Per layer and step ``t`` (counted from 1 at the start of a batch's free phase, on through its
nudged phases), with the layer's input term ``I = gain drive - beta dL/dxi`` of eq. 7/8:

    eps_t   = eps0 / t^eps_decay,   alpha_t = alpha0 / t^alpha_decay        (annealing)
    Enc     = (rho(xi_t) - (1 - alpha_t) rho(xi_{t-1})) / alpha_t           (predictive encoder)
    s       = 1[V + Enc > 1/2],   V <- V + Enc - s                           (sigma-delta)
    Dec    <- (1 - alpha_t) Dec + alpha_t W s                                (predictive decoder)
    xi     <- clamp((1 - eps_t) xi + eps_t I, 0, 1/kappa)                   (state update)

``predictive-coding`` is all of it (figure 3c). ``sigma-delta`` is step-size annealing only
(figure 3d): no encoder or decoder, the quantiser applied to ``rho(xi)`` and the spikes sent as
they are.

Readings (documented choices):

- The encoder: the paper prints ``1/alpha`` in a different place in eq. 17; O'Connor's code
  divides the whole predictive difference by ``alpha``, as above. We treat the paper's
  placement as a typo.
- The decoder acts on the sum ``W s``; since that sum is linear in ``s`` and ``W`` is fixed
  within a batch, filtering the spikes before the sum gives the same ``Dec``. So each layer
  sends its decoded train ``r <- (1 - alpha_t) r + alpha_t s`` and the couplings compute
  ``Dec = W r`` (with an identity quantiser and a shared alpha ``r = rho(xi)`` exactly).
- ``rho'(xi) Dec`` is the gain inside the box times the drive, as in eq. 7 (dynamics.py's
  formulation), and the box is ``[0, 1/kappa]``: O'Connor's ``[0, 1]`` at ``kappa = 1``.
- Constants: O'Connor's search, ``eps0 = 0.354, eps_decay = 0, alpha0 = 0.503,
  alpha_decay = 0.292``. With ``eps_decay = 0`` the step size stays 0.354 (replacing ``lam``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stochep.engine.neurons.base import NEURONS
from stochep.engine.neurons.stateful import StatefulNeuron
from stochep.validation import check_positive, check_unit_interval


def _check_annealing(eps0, eps_decay, alpha0, alpha_decay) -> None:
    check_unit_interval("eps0", eps0)
    check_unit_interval("alpha0", alpha0)
    for name, v in (("eps_decay", eps_decay), ("alpha_decay", alpha_decay)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")


def quantise(v: torch.Tensor, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigma-delta quantiser: ``s = 1[V + Enc > 1/2]``, ``V <- V + Enc - s``; (spikes, V)."""
    q = v + enc
    s = (q > 0.5).to(q.dtype)
    return s, q - s


@NEURONS.register("sigma-delta")
@dataclass(frozen=True)
class SigmaDelta(StatefulNeuron):
    """Step-size annealing only (figure 3d): sigma-delta spikes of ``rho(xi)``, annealed steps.

    Carry: ``(t, V)``. ``quantize=False`` sends ``rho(xi)`` itself (for tests).
    """

    kappa: float = 2.0
    eps0: float = 0.354
    eps_decay: float = 0.0
    alpha0: float = 0.503
    alpha_decay: float = 0.292
    quantize: bool = True

    def __post_init__(self):
        check_positive("kappa", self.kappa)
        _check_annealing(self.eps0, self.eps_decay, self.alpha0, self.alpha_decay)
        if not isinstance(self.quantize, bool):
            raise ValueError(f"quantize must be true or false, got {self.quantize!r}")

    def eps(self, t: int) -> float:
        return self.eps0 / t ** self.eps_decay

    def alpha(self, t: int) -> float:
        return self.alpha0 / t ** self.alpha_decay

    def start(self, states):
        return 0, [torch.zeros_like(xi) for xi in states]

    def _send(self, enc: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return quantise(v, enc) if self.quantize else (enc, v)

    def emit(self, states, carry, rng=None):
        t, potentials = carry
        out = [self._send(self.rate(xi), v) for xi, v in zip(states, potentials)]
        return [s for s, _ in out], (t + 1, [v for _, v in out])

    def integrate(self, states, inputs, carry, lam):
        eps = self.eps(carry[0])  # inputs carry a factor lam (dynamics.step_stateful)
        return [self.project_(torch.add(xi * (1.0 - eps), inp, alpha=eps / lam))
                for xi, inp in zip(states, inputs)], carry


@NEURONS.register("predictive-coding")
@dataclass(frozen=True)
class PredictiveCoding(SigmaDelta):
    """Sigma-delta spikes of the predictive encoder, decoded before the sum (figure 3c).

    Carry: ``(t, V, rho(xi) of the previous step, decoded trains r)``.
    """

    def start(self, states):
        rates = [self.rate(xi) for xi in states]
        return 0, [torch.zeros_like(xi) for xi in states], rates, rates

    def emit(self, states, carry, rng=None):
        t, potentials, prev, decoded = carry
        t += 1
        a = self.alpha(t)
        rates = [self.rate(xi) for xi in states]
        new_v, new_r = [], []
        for rate, p, v, r in zip(rates, prev, potentials, decoded):
            s, v = self._send((rate - (1.0 - a) * p) / a, v)
            new_r.append(torch.lerp(r, s, a))
            new_v.append(v)
        return new_r, (t, new_v, rates, new_r)
