"""Device faults and variability of a neuromorphic chip, applied where the dynamics produce rates
and spikes (``dynamics.py``), so every learning rule and every evaluation runs on the same faulty
device.

Four kinds, each set per layer (the config's ``faults:`` mapping, :func:`check_faults`):

- ``dead``: this fraction of a layer's neurons never fire. Their rate is 0 wherever it is read
  (the spikes they send, the EP contrasts of their synapses, the readout) and every signal they
  send is 0.
- ``stuck``: this fraction always fire: rate 1, and every signal they send is 1.
- ``drop``: each spike a layer sends is lost with probability ``p``. With a spike stream the loss
  is drawn per spike and step, ``s <- s * [u >= p]`` with ``u`` uniform from that stream (so a
  resumed run and the replayed noise of the three-phase estimator lose the same spikes); with no
  stream (mean field, ``rng=None``) the sent signal is its expectation ``(1 - p) s``.
- ``variation``: each weight ``W`` of an interaction acts as ``W * (1 + sigma * n)`` with a fixed
  ``n ~ N(0, 1)`` per weight (device mismatch of the synapses). The stored (programmed) weights
  stay as they are: :meth:`DeviceFaults.varied` swaps the varied ones in for the dynamics, so a
  learning rule computes its update from the device as it behaves and the update is written to
  the programmed weights, as an on-chip learning circuit would.

Which neurons are dead or stuck (disjoint sets of exactly ``round(fraction * n)`` neurons per
layer) and the variation factors are drawn once from a generator seeded by ``faults.seed``:
they are one chip's defects, the same at every step, in training and evaluation, on every
resume. Only the spike losses are drawn as the dynamics run.

A number applies to every hidden layer (``layers: hidden``, the default) or to every layer with
the output (``layers: all``); a list gives one value per layer, bottom to top, the output layer
last. ``variation`` as a number applies to the weights of every interaction; as a list, entry
``i`` is for the weights into layer ``i``.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from stochep.registry import CONFIG_CHECKS

KINDS = ("dead", "stuck", "drop", "variation")
KEYS = (*KINDS, "layers", "seed")
SPREADS = ("hidden", "all")


def _per_layer(kind: str, value, n_layers: int, spread: str) -> list[float]:
    """One value per layer from a number (spread over the hidden layers or all) or a list."""
    if isinstance(value, list):
        if len(value) != n_layers:
            raise ValueError(f"faults.{kind} as a list needs one value per layer ({n_layers}, "
                             f"bottom to top, the output last), got {len(value)}")
        return [_number(f"faults.{kind}[{i}]", v, kind) for i, v in enumerate(value)]
    v = _number(f"faults.{kind}", value, kind)
    if kind == "variation" or spread == "all":
        return [v] * n_layers
    return [v] * (n_layers - 1) + [0.0]


def _number(name: str, v, kind: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a number, got {v!r}")
    if kind == "variation":
        if v < 0:
            raise ValueError(f"{name} (the relative std of the weights) must be >= 0, got {v!r}")
    elif not 0 <= v <= 1:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {v!r}")
    return float(v)


def parse_spec(spec: dict, n_layers: int) -> dict:
    """The per-layer values of a ``faults:`` mapping for a network of ``n_layers`` layers:
    ``{"dead": [...], "stuck": [...], "drop": [...], "variation": [...], "seed": int}``.
    A bad key or value is one ValueError naming it."""
    from stochep.validation import check_mapping_keys

    check_mapping_keys("faults", spec, KEYS)
    spread = spec.get("layers", "hidden")
    if spread not in SPREADS:
        raise ValueError(f"faults.layers must be one of {', '.join(SPREADS)}, got {spread!r}")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"faults.seed must be an integer >= 0, got {seed!r}")
    out = {k: _per_layer(k, spec.get(k, 0.0), n_layers, spread) for k in KINDS}
    for i, (d, s) in enumerate(zip(out["dead"], out["stuck"])):
        if d + s > 1:
            raise ValueError(f"faults.dead + faults.stuck of layer {i} must be at most 1, "
                             f"got {d} + {s}")
    out["seed"] = seed
    return out


class DeviceFaults:
    """One chip's faults for a network's layers (module docstring).

    ``dead[i]``, ``stuck[i]``: boolean masks of layer ``i``'s neurons (``None``: none);
    ``drop[i]``: spike-loss probability of layer ``i``; ``factors[k]``: the variation factors
    of interaction ``k``'s weight (``None``: exact).
    """

    def __init__(self, dead: list, stuck: list, drop: list[float], factors: list):
        self.dead, self.stuck, self.drop, self.factors = dead, stuck, drop, factors

    @classmethod
    def build(cls, spec: dict, net) -> DeviceFaults | None:
        """The faults ``spec`` (a ``faults:`` mapping) describes for ``net``, drawn from a
        generator seeded by ``spec["seed"]``; ``None`` when it describes none."""
        p = parse_spec(spec, len(net.layer_shapes))
        if not any(v for k in KINDS for v in p[k]):
            return None
        gen = torch.Generator().manual_seed(p["seed"])
        device = net.interactions[0].weight.device
        dead, stuck = [], []
        for shape, fd, fs in zip(net.layer_shapes, p["dead"], p["stuck"]):
            n = math.prod(shape)
            order = torch.randperm(n, generator=gen)
            nd, ns = round(fd * n), round(fs * n)
            masks = []
            for idx in (order[:nd], order[nd:nd + ns]):
                m = torch.zeros(n, dtype=torch.bool)
                m[idx] = True
                masks.append(m.view(shape).to(device) if len(idx) else None)
            dead.append(masks[0])
            stuck.append(masks[1])
        factors = []
        for inter, sigma in zip(net.interactions, p["variation"]):
            w = inter.weight
            n = torch.randn(w.shape, generator=gen, dtype=torch.float64)
            factors.append((1 + sigma * n).to(w.device, w.dtype) if sigma > 0 else None)
        return cls(dead, stuck, p["drop"], factors)

    # ---- rates and signals (called by the dynamics) ------------------------------------
    def rate(self, i: int, r: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s rates with its dead neurons at 0 and its stuck ones at 1
        (``masked_fill`` keeps the dtype and, under autograd, passes no gradient to them)."""
        if self.dead[i] is not None:
            r = r.masked_fill(self.dead[i], 0.0)
        if self.stuck[i] is not None:
            r = r.masked_fill(self.stuck[i], 1.0)
        return r

    def rates(self, rates: list[torch.Tensor], layers=None) -> list[torch.Tensor]:
        """:meth:`rate` of each of ``rates``, which belong to ``layers`` (default 0, 1, ...)."""
        layers = range(len(rates)) if layers is None else layers
        return [self.rate(i, r) for i, r in zip(layers, rates)]

    def signals(self, signals: list[torch.Tensor], layers, rng=None) -> list[torch.Tensor]:
        """What layers ``layers`` send this step: dead neurons 0, stuck ones 1, then each
        signal lost with the layer's ``drop`` probability (module docstring)."""
        layers = list(layers)
        out = [self.rate(i, s) for i, s in zip(layers, signals)]
        lossy = [k for k, i in enumerate(layers) if self.drop[i] > 0]
        if not lossy:
            return out
        if rng is None:
            for k in lossy:
                out[k] = out[k] * (1.0 - self.drop[layers[k]])
            return out
        u = rng.uniform(sum(out[k].numel() for k in lossy), torch.float32)
        at = 0
        for k in lossy:
            s = out[k]
            lost = u[at:at + s.numel()].view(s.shape) < self.drop[layers[k]]
            out[k] = s.masked_fill(lost, 0.0)
            at += s.numel()
        return out

    # ---- weights ------------------------------------------------------------------------
    @property
    def varies_weights(self) -> bool:
        return any(f is not None for f in self.factors)

    @contextmanager
    def varied(self, net):
        """``net`` with each interaction's weight times its variation factors inside the block;
        the programmed weights (and any update written to ``.grad``) are untouched after it."""
        saved = []
        with torch.no_grad():
            for inter, f in zip(net.interactions, self.factors):
                if f is not None:
                    saved.append((inter.weight, inter.weight.detach().clone()))
                    inter.weight.mul_(f.to(inter.weight.dtype))
        try:
            yield net
        finally:
            with torch.no_grad():
                for w, own in saved:
                    w.copy_(own)

    def describe(self) -> dict:
        """Per layer: fraction dead, stuck, drop probability; per interaction the realised
        std of its variation factors (for reports)."""
        def frac(m):
            return 0.0 if m is None else m.float().mean().item()

        return {"dead": [frac(m) for m in self.dead], "stuck": [frac(m) for m in self.stuck],
                "drop": list(self.drop),
                "variation": [0.0 if f is None else (f.double() - 1).std().item()
                              for f in self.factors]}


@CONFIG_CHECKS.register("faults")
def check_faults(cfg) -> None:
    """The ``faults`` section: known keys, fractions in [0, 1], a list per layer of the network
    ``layers`` builds (its hidden layers and the output)."""
    spec = parse_spec(cfg.faults, len(cfg.layers) + 1)
    if any(spec["variation"]) and cfg.frame_update == "frame":
        raise ValueError("faults.variation swaps the varied weights in around each batch's "
                         "update; frame_update='frame' steps inside the batch: use "
                         "frame_update='sample'")
