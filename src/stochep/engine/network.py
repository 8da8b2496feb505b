"""Layered energy network: clamped input, a stack of interactions, an inflated output layer.

Layers are ``s_0 = x`` (clamped, used as a rate), then states ``xi_1 .. xi_N``. Interaction ``k``
couples layer ``k`` to layer ``k+1``. The energy (eq. 3/13, with biases and the input term) is

    E(x, xi) = 1/2 sum_i ||xi_i||^2 - sum_k rho(xi_{k+1}) . up_k(rho(xi_k)),    rho(xi_0) := x

and the stochastic energy (eq. 5) replaces ``rho`` by sampled spikes. The output layer has
``n_classes * n_perclass`` neurons (section 3.4); the prediction is the class whose group of
``n_perclass`` output rates has the highest mean.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from stochep.validation import check_input, check_int_at_least, check_labels, check_unit_interval

from .costs import Cost, make_cost
from .dynamics import Dynamics
from .interactions import Dense, Interaction
from .neurons import Neuron, NeuronModel
from .rng import SpikeRNG


@dataclass
class Inference:
    """How ``net(x)`` scores inputs: a free phase of ``steps`` steps with ``dynamics`` (default:
    synchronous), the output read as the mean over its last ``readout_average`` steps, spikes
    from ``SpikeRNG(seed)`` seeded afresh per call, and the scores of ``scorer.scores(net, x,
    dynamics, steps, rng, average)`` (a learning rule whose prediction is not the free phase's,
    e.g. feedback alignment's feedforward pass, or a frame sequence's; ``None``: the free
    phase's class scores). ``data_shape``: a sample's shape as the data holds it (a flat 784
    for a conv net; ``[T, C, H, W]`` for frame sequences, ``frames=True``), reshaped for the
    network; ``token_ids``: inputs are a text dataset's ids, not rates in [0, 1]; ``weights``:
    an object whose ``applied(net)`` context swaps in the weights to score with (the run's
    moving average, ``ema_decay``). A Trainer sets its run's settings on the network it builds;
    they are shared, not copied, when the network is deep-copied."""

    steps: int = 30
    readout_average: int = 1
    seed: int = 0
    dynamics: object = None
    scorer: object = None
    batch_size: int = 1000
    data_shape: tuple | None = None
    frames: bool = False
    token_ids: bool = False
    weights: object = None

    def __deepcopy__(self, memo):
        return self


class EPNetwork(nn.Module):
    def __init__(self, interactions: Sequence[Interaction], neuron: NeuronModel, lam: float = 0.5,
                 n_classes: int = 10, n_perclass: int = 1, cost: Cost | str = "state"):
        super().__init__()
        check_unit_interval("lam", lam)
        check_int_at_least("n_classes", n_classes, 2)
        check_int_at_least("N_perclass", n_perclass, 1)
        self.interactions = nn.ModuleList(interactions)
        for lo, hi in zip(self.interactions[:-1], self.interactions[1:]):
            if tuple(lo.out_shape) != tuple(hi.in_shape):
                raise ValueError(f"interaction shapes do not chain: {lo.out_shape} -> {hi.in_shape}")
        if math.prod(self.interactions[-1].out_shape) != n_classes * n_perclass:
            raise ValueError("output layer must have n_classes * N_perclass = "
                             f"{n_classes * n_perclass} neurons, got {self.interactions[-1].out_shape}")
        self.neuron = neuron
        self.lam = float(lam)
        self.n_classes = n_classes
        self.n_perclass = n_perclass
        self.cost = make_cost(cost) if isinstance(cost, str) else cost
        self.inference = Inference()  # how forward() scores (a Trainer sets its run's)
        # the device the network runs on: its faults (faults.DeviceFaults) and the N-bit grid
        # of its states (quantize.StateGrid); None: a perfect, full-precision device
        self.faults = None
        self.state_grid = None

    @classmethod
    def fc(cls, widths: Sequence[int], n_classes: int = 10, n_perclass: int = 1,
           neuron: NeuronModel | None = None, lam: float = 0.5, init_scale: float = 1.0,
           cost: Cost | str = "state"):
        """Fully connected network ``widths[0] - ... - widths[-1] - n_classes * n_perclass``.

        ``EPNetwork.fc([784, 512])`` is the paper's 1FC, ``[784, 512, 512]`` its 2FC.
        """
        for i, w in enumerate(widths):
            check_int_at_least(f"widths[{i}]", w, 1)
        sizes = list(widths) + [n_classes * n_perclass]
        inter = [Dense(a, b, init_scale=init_scale) for a, b in zip(sizes[:-1], sizes[1:])]
        return cls(inter, neuron or Neuron(), lam, n_classes, n_perclass, cost)

    # ---- shapes and states -------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.interactions[0].in_shape)

    @property
    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the free layers 1..N (not the input)."""
        return [tuple(m.out_shape) for m in self.interactions]

    def check_input(self, x: torch.Tensor) -> None:
        check_input(x, self.input_shape)

    def check_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        check_input(x, self.input_shape)
        check_labels(y, x.shape[0], self.n_classes)

    def zero_states(self, batch: int, dtype=None, device=None) -> list[torch.Tensor]:
        p = self.interactions[0].weight
        return [torch.zeros(batch, *s, dtype=dtype or p.dtype, device=device or p.device)
                for s in self.layer_shapes]

    @property
    def pooled(self) -> bool:
        """Whether any interaction max-pools (and so has pooling indices to find)."""
        return any(getattr(m, "pooled", False) for m in self.interactions)

    def rates(self, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """``rho(xi)`` of every layer, with the device's dead and stuck neurons (:attr:`faults`)."""
        r = [self.neuron.rate(xi) for xi in states]
        return r if self.faults is None else self.faults.rates(r)

    # ---- readout ------------------------------------------------------------------------
    def target(self, y: torch.Tensor, dtype=None) -> torch.Tensor:
        """One-hot target repeated for each of the ``n_perclass`` neurons of a class."""
        onehot = nn.functional.one_hot(y, self.n_classes).to(dtype or torch.get_default_dtype())
        return onehot.repeat_interleave(self.n_perclass, dim=1)

    def class_scores(self, out_state: torch.Tensor) -> torch.Tensor:
        """Mean output rate of each class group, ``[B, n_classes]``."""
        n_out = self.n_classes * self.n_perclass
        if not isinstance(out_state, torch.Tensor) or out_state.dim() < 2 \
                or out_state[0].numel() != n_out:
            got = list(out_state.shape) if isinstance(out_state, torch.Tensor) else \
                type(out_state).__name__
            hint = (": these look like class scores (net(x) returns them); their argmax(1) is "
                    "the prediction") if got == [got[0], self.n_classes] else ""
            raise ValueError(f"expected the output layer's states [B, {n_out}] "
                             f"({self.n_classes} classes x {self.n_perclass}), got {got}{hint}")
        r = self.neuron.rate(out_state)
        if self.faults is not None:
            r = self.faults.rate(len(self.interactions) - 1, r)
        r = r.flatten(1)
        return r.view(r.shape[0], self.n_classes, self.n_perclass).mean(2)

    def predict(self, out_state: torch.Tensor) -> torch.Tensor:
        return self.class_scores(out_state).argmax(1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``[B, n_classes]`` of inputs ``x`` as :attr:`inference` says (a
        Trainer's network: its run's steps, dynamics, readout, rule and weight average; a
        network built by hand: a 30-step synchronous free phase with spikes from seed 0), in
        batches of ``inference.batch_size`` drawing from one spike stream, on the network's
        device. Inputs are checked (shape, finite values, rates in [0, 1]) and reshaped as the
        data holds them (a flat 784 for a conv net)."""
        inf = self.inference
        x = self._prepare(x)
        with inf.weights.applied(self) if inf.weights is not None else nullcontext():
            return torch.cat(list(self.score_batches(x)))

    def score_batches(self, x: torch.Tensor, batch_size: int | None = None, prepare=None):
        """Class scores of network-ready inputs ``x`` as :attr:`inference` says, one batch of
        ``batch_size`` (default ``inference.batch_size``) at a time, all drawing from one spike
        stream seeded afresh; ``prepare`` maps each batch first (a Trainer's reshape)."""
        inf = self.inference
        dynamics = inf.dynamics or Dynamics()
        rng = SpikeRNG(inf.seed, self.interactions[0].weight.device)
        size = batch_size or inf.batch_size
        for i in range(0, len(x), size):
            xb = x[i:i + size] if prepare is None else prepare(x[i:i + size])
            if inf.scorer is not None:
                yield inf.scorer.scores(self, xb, dynamics, inf.steps, rng,
                                        average=inf.readout_average)
            else:
                states = dynamics.relax(self, xb, dynamics.initial(self, xb),
                                        inf.steps, rng, average_last=inf.readout_average)
                yield self.class_scores(states.average[-1])

    def _prepare(self, x) -> torch.Tensor:
        """``x`` checked against :attr:`inference`'s data shape, as float32 on the network's
        device, shaped for it (``[B, *input_shape]``; ``[B, T, *input_shape]`` for frames)."""
        inf = self.inference
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        shape = tuple(inf.data_shape or ((None, *self.input_shape) if inf.frames
                                         else self.input_shape))
        if x.dim() != len(shape) + 1 or any(a is not None and a != b
                                            for a, b in zip(shape, x.shape[1:])):
            want = ", ".join("T" if a is None else str(a) for a in shape)
            hint = ""
            if x.dim() == 4 and x.shape[3] in (1, 3, 4) and min(x.shape[1], x.shape[2]) > 4:
                hint = "; it looks channels-last: pass x.permute(0, 3, 1, 2)"
            raise ValueError(f"x must be [N, {want}] like the training data, got "
                             f"{list(x.shape)}{hint}")
        if len(x) == 0:
            raise ValueError("x is empty")
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"x must be real numbers, got dtype {x.dtype}")
        x = x.float()
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf values")
        token_ids = inf.token_ids or hasattr(self.interactions[0], "embedding")
        if not token_ids and (x.min() < 0 or x.max() > 1):
            lo, hi = x.min().item(), x.max().item()
            hint = " (8-bit images: divide by 255)" if lo >= 0 and hi <= 255 else ""
            raise ValueError(f"x must lie in [0, 1] (firing rates), found [{lo:g}, {hi:g}]{hint}")
        lead = tuple(x.shape[:2]) if inf.frames else (len(x),)
        return x.reshape(*lead, *self.input_shape).to(self.interactions[0].weight.device)

    def loss(self, out_state: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample cost ``L(xi_out, y)`` of :attr:`cost` (``costs.py``)."""
        return self.cost.value(out_state, target, self.neuron)

    def loss_grad(self, out_state: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``dL/dxi_out``: the nudge of eq. 8 is ``-beta`` times this."""
        return self.cost.grad(out_state, target, self.neuron)

    # ---- energies -----------------------------------------------------------------------
    def _energy(self, x, states, acts) -> torch.Tensor:
        e = sum(0.5 * xi.flatten(1).pow(2).sum(1) for xi in states)
        lows = [x] + acts[:-1]
        for inter, lo, hi in zip(self.interactions, lows, acts):
            e = e + inter.energy(lo, hi)
        return e

    def energy(self, x: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
        """Deterministic Hopfield energy E (eq. 3/13), per sample, shape ``[B]``."""
        return self._energy(x, states, self.rates(states))

    def energy_stoch(self, x: torch.Tensor, states: list[torch.Tensor],
                     spikes: list[torch.Tensor]) -> torch.Tensor:
        """Stochastic energy E_stoch (eq. 5) for given spikes, per sample."""
        return self._energy(x, states, spikes)
