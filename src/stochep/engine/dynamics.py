"""Discretised neuron dynamics of the free and nudged phases (paper eq. 6, 7, 8).

One step updates every layer from the previous step's spikes (synchronous, Jacobi style):

    drive_i = up_{i-1}(s_{i-1}) + down_i(s_{i+1})            (no feedback term for the top layer)
    xi_i   <- P[ (1 - lam) xi_i + lam * (kappa * drive_i - beta * dL/dxi_i) ]

with ``s = B(rho(xi))`` (or rates in mean-field mode), ``dL/dxi`` the gradient of the network's
output cost (``costs.py``; zero below the output layer), and ``P`` the projection (clamp) onto
``[0, 1/kappa]``. ``rho``, ``B``, ``kappa`` (the neuron's ``gain``) and ``P`` (its ``project_``)
belong to the neuron model (``neurons.py``); every function here takes an optional ``neuron``
that replaces the network's own for one call (e.g. its ``mean_field()``), so nothing is swapped.

A phase (:meth:`Dynamics.relax`) starts from the states it is given (zeros, a warm start as in
eq. 18, or the bottom-up sweep of ``start.py``) and returns a :class:`PhaseResult`; an
``observer(t, spikes)`` sees every step's spikes.

Formulation choice (docs/formulation.md): eq. 7 read literally uses ``rho'(xi)``, which is zero
at the initial state ``xi = 0``, so no neuron would ever leave zero. We take ``rho' = kappa`` on
the closed interval ``[0, 1/kappa]`` and project after each step. In mean-field mode one step is
then exactly a projected gradient step of size ``lam`` on ``F = E + beta * L`` (eq. 4, 8), so F
never increases when ``lam`` is below ``2 / ||Hessian of F||`` (tested in
``tests/test_dynamics.py``).

Speed: the parts of the drive that are constant within a phase (the clamped input's drive
``up_0(x)`` and the biases) are computed once per phase, pre-scaled by ``lam * kappa``
(:func:`phase_constants`); dense couplings then accumulate into the decayed state in place with
one GEMM each (``addmm_``).
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from stochep.registry import CONFIG_CHECKS
from stochep.validation import check_choice, check_int_at_least

from .rng import SpikeRNG
from .start import STARTS, start_states

Observer = Callable[[int, list], None]


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or its own dtype where that is wider (float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """Wait for the device's queued kernels (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
COMPILE_MIN_GAIN = 1.1  # compile=true keeps the compiled step only if it is this much faster
PROBE_STEPS = 10  # steps per timing in that comparison (Dynamics._probe)
# the comparison is repeated every RECHECK_EVERY compiled steps: a probe on a quiet machine says
# nothing about the rate once a second job shares the cores. A probe runs 4 * PROBE_STEPS = 40
# extra steps, so 1000 keeps the overhead at 4%
RECHECK_EVERY = 1000


@dataclass
class PhaseResult:
    """What one phase returns."""

    final: list[torch.Tensor]  # states after the last step (the next phase starts here)
    average: list[torch.Tensor]  # mean over the last ``average_last`` steps (``final`` if 1)
    steps: int  # steps taken (fewer than asked when ``tol`` ended the phase early)
    carry: object = None  # a stateful neuron's internal state after the last step
    sample_steps: torch.Tensor | None = None  # stop="sample": the steps each sample took


def input_drive(net, x: torch.Tensor) -> torch.Tensor:
    """``up_0(x)``: the clamped input's drive into layer 1 (bias included).

    The input is its own rate, so a pooling interaction pools ``conv(x)`` directly: no
    separate context (a second convolution of ``x``) is needed.
    """
    return net.interactions[0].drive_up(x)


def phase_constants(net, x: torch.Tensor, neuron=None) -> list:
    """Per-layer drive that is constant in a phase, times ``lam * gain``.

    A first interaction whose drive depends on the layer above (``binds_input``, e.g. Hopfield
    attention) contributes its per-phase binding instead, which adds the drive every step.
    """
    neuron = neuron or net.neuron
    # a per-neuron gain (neuron.state_gain) multiplies each step's whole drive instead
    a = net.lam * (1.0 if neuron.state_gain else neuron.gain)
    first = net.interactions[0]
    if neuron.state_gain and first.binds_input:
        raise ValueError(f"neuron {neuron.name!r} has a state-dependent gain, which input "
                         f"interaction {type(first).__name__} does not support")
    consts = [first.bind(x) if first.binds_input else a * input_drive(net, x)]
    for inter in net.interactions[1:]:
        b = inter.bias_up()
        consts.append(None if b is None else a * b)
    return consts


def _update(net, neuron, i, consts, states, spikes, ctxs, beta, target,
            keep: float | None = None) -> torch.Tensor:
    """New state of layer ``i`` from its neighbours' spikes (one layer of eq. 7/8).

    ``keep = 0`` returns the unprojected input term ``lam (gain drive_i - beta dL/dxi_i)`` alone
    (what a stateful neuron integrates itself, :func:`step_stateful`).
    """
    lam = net.lam
    inters = net.interactions
    c = consts[i]
    decay = 1.0 - lam if keep is None else keep
    if neuron.state_gain:
        return _update_state_gain(net, neuron, i, consts, states, spikes, ctxs, beta, target,
                                  decay, keep is not None)
    a = lam * neuron.gain
    if isinstance(c, torch.Tensor):
        v = c.expand_as(states[i]).clone() if decay == 0 else torch.add(c, states[i], alpha=decay)
    else:
        v = torch.zeros_like(states[i]) if decay == 0 else states[i] * decay
        if c is not None:  # a bound input interaction: its drive from this layer's spikes
            c.add_(v, spikes[i], a)
    if i > 0:
        inters[i].add_up_(v, spikes[i - 1], ctxs[i], a)
    if i + 1 < len(states):
        inters[i + 1].add_down_(v, spikes[i + 1], ctxs[i + 1], a)
    if i == len(states) - 1 and beta != 0.0:
        v = v.sub_(net.loss_grad(states[i], target), alpha=lam * beta)
    return v if keep is not None else neuron.project_(v)


def _update_state_gain(net, neuron, i, consts, states, spikes, ctxs, beta, target, decay,
                       raw) -> torch.Tensor:
    """:func:`_update` for a neuron whose ``rho'`` varies inside its box (eq. 7 with
    ``rho'(xi_i)`` per neuron): ``xi <- P((1 - lam) xi + lam rho'(xi) drive - lam beta dL/dxi)``.
    The phase constants hold ``lam`` times the constant drive (:func:`phase_constants`)."""
    lam, inters, c = net.lam, net.interactions, consts[i]
    drive = c.expand_as(states[i]).clone() if c is not None else torch.zeros_like(states[i])
    if i > 0:
        inters[i].add_up_(drive, spikes[i - 1], ctxs[i], lam)
    if i + 1 < len(states):
        inters[i + 1].add_down_(drive, spikes[i + 1], ctxs[i + 1], lam)
    v = drive.mul_(neuron.gain_at(states[i]))
    if decay != 0:
        v.add_(states[i], alpha=decay)
    if i == len(states) - 1 and beta != 0.0:
        v = v.sub_(net.loss_grad(states[i], target), alpha=lam * beta)
    return v if raw else neuron.project_(v)


def layer_rates(net, neuron, states: list[torch.Tensor], layers=None) -> list[torch.Tensor]:
    """``rho(xi)`` of ``states`` (layers ``layers``, default 0, 1, ...) with the network's dead
    and stuck neurons (``net.faults``, ``faults.py``) at 0 and 1."""
    rates = [neuron.rate(xi) for xi in states]
    faults = getattr(net, "faults", None)
    return rates if faults is None else faults.rates(rates, layers)


def sent(net, signals: list[torch.Tensor], layers, rng=None) -> list[torch.Tensor]:
    """The spikes (or rates, in mean field) layers ``layers`` send to their neighbours this
    step: as drawn, or through the network's device faults (dead, stuck, dropped spikes)."""
    faults = getattr(net, "faults", None)
    return signals if faults is None else faults.signals(signals, layers, rng)


def on_grid(net, neuron, states: list[torch.Tensor], rng=None) -> list[torch.Tensor]:
    """New states as the dynamics store them: exact, or on the network's N-bit state grid
    (``net.state_grid``, ``quantize.py``)."""
    grid = getattr(net, "state_grid", None)
    return states if grid is None else grid(states, neuron, rng)


def contexts(net, rates, layers=None) -> list:
    """Per-interaction context (max-pooling indices) from the rates below each interaction.

    ``ctxs[k]`` belongs to interaction ``k`` and is computed from ``rates[k - 1]``; the input's
    (``k = 0``) is folded into the phase constants. ``layers`` limits the refresh to the
    interactions above those layers (the others are ``None``).
    """
    inters = net.interactions
    return [None] + [inters[k].context(rates[k - 1])
                     if layers is None or k - 1 in layers else None
                     for k in range(1, len(inters))]


def step(net, consts: list, states: list[torch.Tensor], rng: SpikeRNG | None = None,
         beta: float = 0.0, target: torch.Tensor | None = None,
         ctxs: list | None = None, neuron=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One synchronous Euler step of eq. 7 (free phase) or eq. 8 (``beta != 0``, nudged).

    Returns (new states, the spikes that drove them). ``ctxs``: pooling indices to reuse (see
    ``Dynamics(pool_every=...)``); ``None`` computes them from the current rates (exact).
    """
    neuron = neuron or net.neuron
    layers = range(len(states))
    rates = layer_rates(net, neuron, states)
    spikes = sent(net, neuron.sample(rates, rng), layers, rng)
    if ctxs is None:
        ctxs = contexts(net, rates)
    return on_grid(net, neuron, [_update(net, neuron, i, consts, states, spikes, ctxs, beta,
                                         target) for i in layers], rng), spikes


def step_async(net, consts: list, states: list[torch.Tensor], rng: SpikeRNG | None = None,
               beta: float = 0.0, target: torch.Tensor | None = None,
               ctxs: list | None = None, neuron=None
               ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Even/odd step: layers 1, 3, .. update first, then 2, 4, .. from their new spikes.

    Each half-step is a block-coordinate step on F, so the mean-field energy still never
    increases; information crosses two layers per step instead of one. A half-step samples only
    the spikes its layers read (their neighbours', and a bound input layer's own), so a step
    draws as many spikes as a synchronous one. Without given ``ctxs`` the pooling indices are
    exact: computed before the step, and after the first half-step refreshed only above the
    layers it changed. The spikes returned are the ones that drove the updates: the odd
    layers' from the first half-step, the even layers' from the second.
    """
    neuron = neuron or net.neuron
    states = list(states)
    n = len(states)
    exact = ctxs is None
    own = net.interactions[0].binds_input  # layer 0 then reads its own spikes too
    driving: list = [None] * n
    rates = layer_rates(net, neuron, states)
    for parity in (0, 1):
        if parity == 1:  # only the even layers changed in the first half-step
            rates[0::2] = layer_rates(net, neuron, states[0::2], range(0, n, 2))
        read = [i for i in range(n) if i % 2 != parity or (i == 0 and own)]
        spikes = [None] * n
        drawn = sent(net, neuron.sample([rates[i] for i in read], rng), read, rng) \
            if read else []
        for i, s in zip(read, drawn):
            spikes[i] = s
            if i % 2 != parity:
                driving[i] = s
        if exact:
            fresh = contexts(net, rates, None if parity == 0 else range(0, n, 2))
            ctxs = fresh if parity == 0 else [f if f is not None else c
                                              for f, c in zip(fresh, ctxs)]
        half = range(parity, n, 2)
        new = on_grid(net, neuron, [_update(net, neuron, i, consts, states, spikes, ctxs, beta,
                                            target) for i in half], rng)
        for i, xi in zip(half, new):
            states[i] = xi
    return states, driving


def step_stateful(net, consts: list, states: list[torch.Tensor], carry, rng=None,
                  beta: float = 0.0, target: torch.Tensor | None = None, ctxs: list | None = None,
                  neuron=None) -> tuple[list[torch.Tensor], list[torch.Tensor], object]:
    """One synchronous step of a neuron with internal state (``neurons.StatefulNeuron``: LIF,
    sigma-delta): the neuron emits its signals from its state ``carry``, every layer's input
    term is summed from them as in eq. 7/8, and the neuron integrates it into new states.

    Returns (new states, the signals that drove them, the new carry).
    """
    neuron = neuron or net.neuron
    signals, carry = neuron.emit(states, carry, rng)
    signals = sent(net, signals, range(len(states)), rng)
    if ctxs is None:
        ctxs = contexts(net, layer_rates(net, neuron, states))
    inputs = [_update(net, neuron, i, consts, states, signals, ctxs, beta, target, keep=0.0)
              for i in range(len(states))]
    states, carry = neuron.integrate(states, inputs, carry, net.lam)
    return states, signals, carry


class Dynamics:
    """How a phase is run: update order, early exit, and optional ``torch.compile``.

    update: "sync" (all layers from the previous step, eq. 7) or "async" (even/odd).
    tol: stop a phase early once ``max |xi_t - xi_{t-k}| < tol`` with ``k = check_every``;
        0 disables. Stochastic states keep fluctuating, so only a tolerance above the spike
        noise ends their phases early.
    compile: run the step through ``torch.compile`` (batch size dynamic, so a short last batch
        or evaluation's batch reuses the graph). On the first step the compiled and eager steps
        are timed side by side, and again every ``RECHECK_EVERY`` steps (load changes);
        compilation that does not pay (``COMPILE_MIN_GAIN``), or fails, falls back to eager mode
        for the rest of the run with a one-line message.
    graphs: compile the step (as ``compile``) in torch.compile's ``reduce-overhead`` mode, which
        on a GPU records it as a CUDA graph and replays it: one launch a step instead of one per
        kernel (a 5C step launches about a hundred). The spike stream's state is marked a static
        address so the graph advances it in place; a phase's final states are copied out of the
        graph's memory when the phase ends (the next replay reuses it). On a CPU the step is
        compiled as with ``compile`` (CUDA graphs need a GPU). Asked for by name, it is kept
        without the speed probe (a failure still falls back to eager mode).
    pool_every: recompute the max-pooling indices (one convolution of the rates per pooled
        interaction) only every ``pool_every`` steps and reuse them in between; 1 is exact.
        A fixed point is unchanged (the indices are recomputed there), only the path to it.
    stop: "batch" ends a phase when every sample has settled (``tol``); "sample" tests each
        sample on its own (its largest ``|xi_t - xi_{t-k}|`` over all layers), keeps a settled
        sample's states as they are and runs the later steps on the unsettled samples only
        (masked updates: a batch's easy samples stop costing steps). With ``tol = 0`` no
        sample stops and the phase equals the full loop.
    start: the free phase's initial states (:meth:`initial`): "zeros" (the paper) or "sweep",
        the bottom-up mean-field pass of ``start.py``.
    """

    def __init__(self, update: str = "sync", tol: float = 0.0, check_every: int = 5,
                 compile: bool = False, pool_every: int = 1, graphs: bool = False,
                 stop: str = "batch", start: str = "zeros"):
        check_choice("update", update, ("sync", "async"))
        check_choice("stop", stop, ("batch", "sample"))
        check_choice("start", start, STARTS)
        if stop == "sample" and graphs:
            raise ValueError("stop=sample shrinks the batch as samples settle; graphs=true "
                             "records one batch shape: choose one")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0:
            raise ValueError(f"tol must be >= 0, got {tol!r}")
        check_int_at_least("pool_every", pool_every, 1)
        for name, v in (("compile", compile), ("graphs", graphs)):
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be true or false, got {v!r}")
        self.update, self.tol, self.check_every = update, float(tol), int(check_every)
        self.pool_every = pool_every
        self.stop, self.start = stop, start
        self._eager = step if update == "sync" else step_async
        self._step = self._eager
        self.compile_error: str | None = None  # why compiling failed (then eager mode is used)
        self.compile_refused: str | None = None  # why the probe kept eager mode (no gain)
        self._compiled_calls = 0  # steps run compiled so far (the probe's schedule)
        self.graphs = graphs
        if graphs:  # CUDA graphs record one batch shape each: not dynamic
            self._step = torch.compile(self._eager, mode="reduce-overhead")
        elif compile:
            # dynamic: one graph serves every batch size (the last, short batch; evaluation's)
            self._step = torch.compile(self._eager, dynamic=True)

    @classmethod
    def from_config(cls, cfg) -> Dynamics:
        return cls(cfg.update, cfg.tol, compile=cfg.compile, pool_every=cfg.pool_every,
                   graphs=cfg.graphs, stop=cfg.stop, start=cfg.start)

    def initial(self, net, x: torch.Tensor, neuron=None) -> list[torch.Tensor]:
        """The free phase's initial states on input ``x`` as ``start`` says."""
        return start_states(self.start, net, x, neuron)

    def _call(self, *args):
        if self._step is not self._eager:
            # graphs: asked for by name, and the probe's forked spike stream would be a second,
            # non-static stream for the recorded graph, so no timing decides against it
            if self._compiled_calls % RECHECK_EVERY == 0 and not self.graphs:
                self._probe(*args)
            self._compiled_calls += 1
        try:
            return self._step(*args)
        except Exception as e:  # compilation failed: keep training in eager mode
            if self._step is self._eager:
                raise
            self.compile_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            warnings.warn(f"torch.compile failed, running eagerly ({self.compile_error})")
            self._step = self._eager
            return self._step(*args)

    def _probe(self, net, consts, states, rng, *rest) -> None:
        """Time the compiled step against the eager one on this call's own arguments (the
        first call compiles; a copy of the spike stream, so training draws the same spikes).
        Keep the compiled step only if it is ``COMPILE_MIN_GAIN`` times faster; otherwise say
        so in one line (stderr) and run eagerly from here on."""
        fork = None if rng is None else rng.fork()
        times = {}
        try:
            if not self._compiled_calls:
                self._step(net, consts, states, fork, *rest)  # compiles
            sync = _synchronizer(states[0].device)
            for _ in range(2):  # interleaved, best of two, against machine noise
                for name, fn in (("eager", self._eager), ("compiled", self._step)):
                    sync()
                    t = time.perf_counter()
                    for _ in range(PROBE_STEPS):
                        fn(net, consts, states, fork, *rest)
                    sync()  # on a GPU: the kernels' time, not only their launches
                    times[name] = min(times.get(name, math.inf), time.perf_counter() - t)
        except Exception:
            return  # compiling failed: _call falls back with the error message
        gain = times["eager"] / times["compiled"]
        if gain < COMPILE_MIN_GAIN:
            after = f"after {self._compiled_calls} steps, " if self._compiled_calls else ""
            self.compile_refused = (f"{after}torch.compile ran this step at {gain:.2f}x eager "
                                    f"(needs {COMPILE_MIN_GAIN}x); running eagerly")
            print(f"stochep: compile=true: {self.compile_refused}", file=sys.stderr)
            self._step = self._eager

    def relax(self, net, x: torch.Tensor, init: list[torch.Tensor], steps: int,
              rng: SpikeRNG | None = None, beta: float = 0.0,
              target: torch.Tensor | None = None, average_last: int = 1, neuron=None,
              observer: Observer | None = None, carry=None, consts: list | None = None
              ) -> PhaseResult:
        """Run one phase of at most ``steps`` steps from the states ``init``.

        ``average_last = k > 1`` also averages the states over the phase's last ``k`` steps (a
        lower-noise equilibrium estimate for the EP contrast of stochastic networks).
        ``neuron`` replaces the network's neuron model for this phase; ``observer(t, spikes)``
        is called after every step ``t`` (1-based) with the spikes that drove it. A stateful
        neuron's internal state starts from ``carry`` (``None``: fresh, ``neuron.start``) and
        the phase returns it, so a nudged phase continues where the free phase stopped.
        ``consts``: :func:`phase_constants` of ``(net, x, neuron)`` when the caller already has
        them (the phases of one batch share them); computed here otherwise.
        """
        neuron = neuron or net.neuron
        stateful = getattr(neuron, "stateful", False)
        if stateful:
            if self.update != "sync":
                raise ValueError(f"neuron {neuron.name!r} keeps internal state and runs with "
                                 f"update='sync' only, got update={self.update!r}")
            carry = neuron.start(init) if carry is None else carry
        if consts is None:
            consts = phase_constants(net, x, neuron)
        if rng is not None:  # grow the spike stream here, not inside a (compiled) step
            rng.reserve(sum(s.numel() for s in init))
        if self.stop == "sample":
            if stateful or net.interactions[0].binds_input:
                raise ValueError("stop=sample needs a neuron without internal state and an "
                                 "input interaction that does not bind the layer above")
            return self._relax_per_sample(net, init, steps, rng, beta, target, average_last,
                                          neuron, observer, consts)
        graphed = self.graphs and self._step is not self._eager and init[0].is_cuda
        if graphed and rng is not None:  # advanced in place by the graph, never re-allocated
            torch._dynamo.mark_static_address(rng.state)
        states = ref = init
        ctxs, total, count = None, None, 0
        t = 0
        for t in range(1, steps + 1):
            if self.pool_every > 1 and (t - 1) % self.pool_every == 0:
                ctxs = contexts(net, layer_rates(net, neuron, states))
            if stateful:
                states, spikes, carry = step_stateful(net, consts, states, carry, rng, beta,
                                                      target, ctxs, neuron)
            else:
                states, spikes = self._call(net, consts, states, rng, beta,
                                            target if beta != 0.0 else None, ctxs, neuron)
            if observer is not None:  # (the next replay overwrites a graph's outputs: copies)
                observer(t, [s.clone() for s in spikes] if graphed else spikes)
            if average_last > 1 and t > steps - average_last:
                # summed in float32 at least (bf16 dynamics would lose the average's low bits)
                total = [_wide(s).clone() if graphed else _wide(s) for s in states] \
                    if total is None else \
                    [a + _wide(b) for a, b in zip(total, states)]
                count += 1
            if self.tol > 0 and t % self.check_every == 0:
                if max((a - b).abs().max().item() for a, b in zip(states, ref)) < self.tol:
                    break
                ref = [s.clone() for s in states] if graphed else states
        if graphed:
            states = [s.clone() for s in states]
        average = states if count == 0 else [(a / count).to(s.dtype)
                                             for a, s in zip(total, states)]
        return PhaseResult(states, average, t, carry)


    def _relax_per_sample(self, net, init, steps, rng, beta, target, average_last, neuron,
                          observer, consts) -> PhaseResult:
        """:meth:`relax` with ``stop="sample"``: every ``check_every`` steps the samples whose
        states moved less than ``tol`` (each its own largest change over all layers) are
        written out and dropped from the batch; the input's drive and the target are cut to
        the samples still running. A settled sample's average is over the steps of the last
        ``average_last`` it ran (its final state if it stopped before them). The observer sees
        the running samples' spikes."""
        n_batch = init[0].shape[0]
        out = [s.clone() for s in init]
        active = torch.arange(n_batch, device=init[0].device)
        sample_steps = torch.full((n_batch,), steps, dtype=torch.long)
        window = average_last > 1
        total = [torch.zeros_like(_wide(s)) for s in init] if window else None
        count = torch.zeros(n_batch, dtype=torch.long, device=init[0].device)
        consts, tgt = list(consts), target
        states = ref = list(init)
        ctxs, t = None, 0
        for t in range(1, steps + 1):
            if self.pool_every > 1 and (t - 1) % self.pool_every == 0:
                ctxs = contexts(net, [neuron.rate(xi) for xi in states])
            states, spikes = self._call(net, consts, states, rng, beta,
                                        tgt if beta != 0.0 else None, ctxs, neuron)
            if observer is not None:
                observer(t, spikes)
            if window and t > steps - average_last:
                for a, s in zip(total, states):
                    a.index_add_(0, active, _wide(s))
                count[active] += 1
            if t % self.check_every == 0 and t < steps:
                moved = torch.stack([(a - b).abs().flatten(1).amax(1)
                                     for a, b in zip(states, ref)]).amax(0)
                done = moved < self.tol
                if done.any():
                    gone = active[done]
                    for o, s in zip(out, states):
                        o[gone] = s[done]
                    sample_steps[gone.cpu()] = t
                    keep = ~done
                    active = active[keep]
                    if not len(active):
                        states = []
                        break
                    states = [s[keep] for s in states]
                    if isinstance(consts[0], torch.Tensor):  # the input's drive, per sample
                        consts[0] = consts[0][keep]
                    tgt = None if tgt is None else tgt[keep]
                    if ctxs is not None:  # pooling indices of the dropped samples
                        ctxs = contexts(net, [neuron.rate(xi) for xi in states])
                ref = states
        for o, s in zip(out, states):
            o[active] = s
        average = out
        if window:
            average = []
            for a, o in zip(total, out):
                c = count.view((-1,) + (1,) * (o.dim() - 1))
                average.append(torch.where(c > 0, (a / c.clamp(min=1)).to(o.dtype), o))
        return PhaseResult(out, average, t, None, sample_steps)


def relax(net, x: torch.Tensor, init: list[torch.Tensor], steps: int,
          rng: SpikeRNG | None = None, beta: float = 0.0,
          target: torch.Tensor | None = None, neuron=None) -> list[torch.Tensor]:
    """Run one synchronous phase of ``steps`` steps from ``init``; returns the final states."""
    return Dynamics().relax(net, x, init, steps, rng, beta, target, neuron=neuron).final


@CONFIG_CHECKS.register("dynamics")
def check_dynamics(cfg) -> None:
    """The dynamics' section: ``update``, ``tol``, ``stop``, ``start``, ``compile``,
    ``pool_every``."""
    Dynamics.from_config(cfg)
