"""Low-precision learning: weights on an N-bit fixed-point grid, updates landed on it.

The config's ``quantize:`` mapping (:func:`check_quantize`)::

    quantize: {weights: 8, updates: 8, states: 0, rounding: stochastic, headroom: 4.0}

**Weights** (``weights: N``). Each interaction's weight ``W`` (biases stay in full precision, as
the wide accumulators of a fixed-point datapath) lives on a signed, symmetric grid of
``2^N - 1`` levels::

    W = delta * k,   k in {-q, ..., q},   q = 2^(N-1) - 1,
    delta = headroom * max|W_0| / q

with ``W_0`` the layer's weights at calibration (after the biases are calibrated, before the
first update): the scale is fixed once per layer and kept in the checkpoint. It is not a power
of two: weights at init span only a fraction of the range they reach after training (their
largest grows 5-9x on MNIST 1FC), so the grid must leave ``headroom``, and a power of two would
either waste up to half the levels or clip; a fixed per-layer scale is one multiplier per
layer in hardware. At calibration the weights are rounded to the nearest level.

**Updates** (``updates: M``, 0 = no limit). After every optimizer step the step's change
``dW`` (whatever the optimizer, for every learning rule: EP and BPTT train on the same grid)
lands on the grid::

    dk = clip(R(dW / delta), -u, u),   u = 2^(M-1) - 1
    k  <- clip(k + dk, -q, q)

``R`` is stochastic rounding, ``floor(x) + [v < x - floor(x)]`` with ``v ~ U[0, 1)`` (unbiased:
``E[dk] = dW / delta`` inside the clip), or nearest (``rounding: nearest``), under which any
change below half a step is lost (``engine/quantize.py``). The uniforms come from the run's
``round`` stream (``rng.Streams``), which is checkpointed, so a resumed run rounds exactly as an
uninterrupted one. The optimizer's own state (AdamW's moments) stays in float32.

**States** (``states: S``): the membrane states on ``2^S`` levels of the neuron's box after
every step of the dynamics (:class:`stochep.engine.quantize.StateGrid`), rounded the same way
with uniforms from the spike stream.
"""
from __future__ import annotations

import torch

from stochep.engine.quantize import ROUNDINGS, StateGrid, round_grid
from stochep.registry import CONFIG_CHECKS

KEYS = ("weights", "updates", "states", "rounding", "headroom")
DEFAULTS = {"weights": 0, "updates": 0, "states": 0, "rounding": "stochastic", "headroom": 4.0}


def settings(spec: dict) -> dict:
    """The ``quantize:`` mapping with its defaults filled in, checked: one ValueError line
    naming the key."""
    from stochep.validation import check_mapping_keys

    check_mapping_keys("quantize", spec, KEYS)
    s = {**DEFAULTS, **spec}
    for k in ("weights", "updates", "states"):
        v = s[k]
        if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or 2 <= v <= 24):
            raise ValueError(f"quantize.{k} must be a number of bits in 2..24 (0: full "
                             f"precision), got {v!r}")
    if s["rounding"] not in ROUNDINGS:
        raise ValueError(f"quantize.rounding must be one of {', '.join(ROUNDINGS)}, "
                         f"got {s['rounding']!r}")
    h = s["headroom"]
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not h >= 1:
        raise ValueError(f"quantize.headroom (grid range / largest initial weight) must be a "
                         f"number >= 1, got {h!r}")
    s["headroom"] = float(h)
    if s["updates"] and not s["weights"]:
        raise ValueError("quantize.updates lands updates on the weight grid: set "
                         "quantize.weights too")
    return s


class WeightQuantizer:
    """The weights of ``net``'s interactions on their N-bit grids (module docstring).

    Built at calibration: the scales are fixed from the weights as they are then and the
    weights are rounded onto the grid. :meth:`attach` hooks it to an optimizer so that every
    step lands on the grid; ``generator`` supplies the stochastic rounding's uniforms.
    """

    def __init__(self, net, bits: int, update_bits: int = 0, rounding: str = "stochastic",
                 headroom: float = 4.0, generator: torch.Generator | None = None):
        self.weights = [inter.weight for inter in net.interactions]
        self.q = 2 ** (bits - 1) - 1
        self.u = 2 ** (update_bits - 1) - 1 if update_bits else None
        self.rounding, self.generator = rounding, generator
        self.headroom = headroom
        self._before: list[torch.Tensor] | None = None
        self.calibrate()

    @torch.no_grad()
    def calibrate(self) -> None:
        """Fix each layer's scale from its weights as they are now and round them onto it."""
        self.scales = [self.headroom * w.detach().abs().max().item() / self.q or 1.0
                       for w in self.weights]
        for w, d in zip(self.weights, self.scales):
            w.copy_(torch.round(w / d).clamp_(-self.q, self.q) * d)

    @classmethod
    def from_config(cls, cfg, net, generator=None) -> WeightQuantizer | None:
        s = settings(cfg.quantize)
        if not s["weights"]:
            return None
        return cls(net, s["weights"], s["updates"], s["rounding"], s["headroom"], generator)

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Land every step of ``optimizer`` on the grid (a pre- and a post-step hook)."""
        optimizer.register_step_pre_hook(lambda *_: self.before_step())
        optimizer.register_step_post_hook(lambda *_: self.after_step())

    def before_step(self) -> None:
        self._before = [w.detach().clone() for w in self.weights]

    @torch.no_grad()
    def after_step(self) -> None:
        """``k <- clip(k + clip(R(dW / delta), -u, u), -q, q)`` for every weight."""
        for w, old, d in zip(self.weights, self._before, self.scales):
            k = torch.round(old / d)
            x = (w - old) / d
            u = None
            if self.rounding == "stochastic":
                u = torch.rand(x.shape, generator=self.generator, dtype=torch.float32)
                u = u.to(x.device, x.dtype)
            dk = round_grid(x, self.rounding, u)
            if self.u is not None:
                dk.clamp_(-self.u, self.u)
            w.copy_((k + dk).clamp_(-self.q, self.q) * d)
        self._before = None

    def levels(self) -> list[torch.Tensor]:
        """The integer level ``k`` of every weight, per interaction."""
        return [torch.round(w.detach() / d) for w, d in zip(self.weights, self.scales)]

    def state_dict(self) -> dict:
        return {"scales": list(self.scales)}

    def load_state_dict(self, state: dict) -> None:
        scales = state["scales"]
        if len(scales) != len(self.scales):
            raise ValueError("the checkpoint's weight grids do not match the network's layers")
        self.scales = [float(s) for s in scales]


def state_grid(cfg) -> StateGrid | None:
    """The N-bit state grid ``quantize.states`` asks for (``None``: exact states)."""
    s = settings(cfg.quantize)
    return StateGrid(s["states"], s["rounding"]) if s["states"] else None


@CONFIG_CHECKS.register("quantize")
def check_quantize(cfg) -> None:
    """The ``quantize`` section: known keys, bit widths, rounding; no moving average of the
    weights (it would leave the grid); state grids only for stateless neurons."""
    s = settings(cfg.quantize)
    if s["weights"] and cfg.ema_decay > 0:
        raise ValueError("quantize.weights keeps the weights on a grid, which a moving average "
                         "(ema_decay) leaves; set ema_decay=0")
    if s["states"]:
        from stochep.engine.neurons.base import build_neuron

        if build_neuron(cfg).stateful:
            raise ValueError(f"quantize.states rounds the states the dynamics integrate; neuron "
                             f"{cfg.neuron!r} keeps its own internal state: use a stateless "
                             "neuron or quantize.states=0")
