"""Per-step gradient check: EP's per-step updates against BPTT's per-step gradients (the
Gradient Descending Updates property, Ernoult et al. 2019, Theorem 1; ``stochep gradcheck
--per-step``).

In mean field (float64, a copy of the network), a free phase of ``T`` steps from zero settles at
``s_T ~ s*``. Then:

- **BPTT**: the cost ``L(s_T)`` is backpropagated through the free phase. Its gradient with
  respect to the parameters splits into one term per step; ``g_BPTT(t)`` is the term of the
  ``t``-th step counted back from the end (truncated BPTT through the last ``t`` steps minus
  through the last ``t - 1``). For the neurons, ``g_BPTT(t) = -dL/dxi`` at ``s_{T - t + 1}``
  (``t = 1``: the final state, where only the output layer's is nonzero).
- **EP**: a nudged phase of ``K`` steps from ``s_T`` at ``beta``; its per-step update is
  ``u_EP(t) = (dE/dtheta(s_t) - dE/dtheta(s_{t-1})) / beta`` (the increments continual EP
  applies, which sum to the EP estimate of eq. 9), and for the neurons
  ``(xi_t - xi_{t-1}) / (lam beta)``.

GDU says ``u_EP(t) = g_BPTT(t)`` for every ``t`` as ``beta -> 0`` once the free phase has
settled. The neurons' ``1 / lam`` is the step size of the dynamics: one step moves the states by
``lam`` times the gradient of ``F`` (``engine/dynamics.py``), where the theorem's
primitive-function dynamics move them by the gradient itself; the parameter updates need no
such factor because the nudge is ``lam beta dL/dxi`` as well. Gradients are of the batch-mean
cost; the neurons' are per sample (times the batch size).

Per tensor (each parameter and each layer's neurons), as in Ernoult et al. 2019 (their
``RMSE``): the relative RMSE ``sqrt(mean_t (u - g)^2) / max(sqrt(mean_t u^2), sqrt(mean_t g^2))``
averaged over elements, and the sign agreement, one minus the fraction of (element, step) pairs
where ``u g < 0`` (their "sign error"; a zero agrees with anything); and, over the steps where
BPTT's term is not zero, the smallest cosine between the two whole tensors. Neurons are compared where
they lie strictly inside the state box ``[0, 1/kappa]`` at the free equilibrium: a neuron held at
the box's edge by the projection does not move in the nudged phase, while BPTT's gradient with
respect to it (through its rate) need not be zero; the row says how many elements it covers.
Measured: docs/hardware.md, "Per-step gradient check".
"""
from __future__ import annotations

import copy

import torch

from stochep.engine.dynamics import Dynamics, phase_constants, step
from stochep.rules.bptt import bptt_gradients
from stochep.rules.ep import contrast_difference
from stochep.validation import check_int_at_least, check_positive


def _mean_field_double(net):
    net = copy.deepcopy(net).double()
    net.neuron = net.neuron.mean_field()
    return net


def bptt_per_step(net, x: torch.Tensor, y: torch.Tensor, T: int, K: int) -> dict:
    """``{name: [K, *shape]}``: BPTT's per-step terms (module docstring), for every parameter
    and ``neurons.k`` for layer ``k`` (1-based), step 1 the last. ``net`` is used as given."""
    params = dict(net.named_parameters())
    partial = []
    for t in range(1, K + 1):  # truncated BPTT through the last t steps
        bptt_gradients(net, x, y, T, truncate=t)
        partial.append({n: p.grad.detach().clone() for n, p in params.items()})
    out = {n: torch.stack([partial[0][n]] + [partial[t][n] - partial[t - 1][n]
                                             for t in range(1, K)]) for n in params}
    # neurons: dL/dxi of the states s_{T-K+1} .. s_T, in one backward pass
    target = net.target(y, x.dtype)
    n_layers = len(net.layer_shapes)
    with torch.enable_grad():
        consts = phase_constants(net, x)
        states = net.zero_states(x.shape[0], x.dtype)
        kept = []
        for t in range(1, T + 1):
            states = step(net, consts, states)[0]
            if t > T - K:
                kept.append(states)
        leaves = [s for group in kept for s in group]
        grads = torch.autograd.grad(net.loss(states[-1], target).mean(), leaves,
                                    allow_unused=True)
    batch = x.shape[0]
    for k in range(n_layers):
        series = []
        for t in range(1, K + 1):  # g(t) = -dL/dxi at s_{T-t+1}: kept index K - t
            g = grads[(K - t) * n_layers + k]
            series.append(torch.zeros_like(kept[K - t][k]) if g is None else -g)
        out[f"neurons.{k + 1}"] = torch.stack(series).detach() * batch
    return out


def ep_per_step(net, x: torch.Tensor, y: torch.Tensor, beta: float, T: int,
                K: int) -> tuple[dict, dict]:
    """``({name: [K, *shape]}, {neurons.k: mask})``: EP's per-step updates of a ``K``-step
    nudged phase at ``beta`` after a ``T``-step free phase (module docstring), and which neurons
    lie inside the state box at the free equilibrium. ``net`` is used as given."""
    dyn = Dynamics()
    target = net.target(y, x.dtype)
    names = [n for n, _ in net.named_parameters()]
    series = {n: [] for n in names}
    n_layers = len(net.layer_shapes)
    for k in range(n_layers):
        series[f"neurons.{k + 1}"] = []
    with torch.no_grad():
        prev = dyn.relax(net, x, net.zero_states(x.shape[0], x.dtype), T).final
        # neurons inside the state box at the free equilibrium (the others are held by the
        # projection: EP leaves them still where BPTT's unprojected gradient does not)
        inside = {f"neurons.{k + 1}": ((s > net.neuron.low) & (s < net.neuron.high)).flatten()
                  for k, s in enumerate(prev)}
        for _ in range(K):
            nxt = dyn.relax(net, x, prev, 1, None, beta, target).final
            for n, g in zip(names, contrast_difference(net, x, nxt, prev, beta)):
                series[n].append(g)
            for k in range(n_layers):
                series[f"neurons.{k + 1}"].append((nxt[k] - prev[k]) / (net.lam * beta))
            prev = nxt
    return {n: torch.stack(v) for n, v in series.items()}, inside


def compare(ep: dict, bptt: dict, masks: dict | None = None) -> list[dict]:
    """Per tensor: relative RMSE and sign agreement (module docstring), over the elements
    ``masks[name]`` selects where it has an entry (the neurons inside the box)."""
    rows = []
    masks = masks or {}
    for name in ep:
        u, g = ep[name].flatten(1), bptt[name].flatten(1)
        if name in masks:
            u, g = u[:, masks[name]], g[:, masks[name]]
        rms = ((u - g).pow(2).mean(0).sqrt())
        scale = torch.maximum(u.pow(2).mean(0).sqrt(), g.pow(2).mean(0).sqrt())
        live = scale > 0  # elements that never move in either: nothing to compare
        rel = (rms[live] / scale[live]).mean().item() if live.any() else 0.0
        agree = 1.0 - (u * g < 0).double().mean().item() if u.numel() else 1.0
        # per step: the cosine of the two vectors, where BPTT's is not zero
        norms = g.norm(dim=1)
        cos = torch.nn.functional.cosine_similarity(u[norms > 0], g[norms > 0], dim=1)
        rows.append({"tensor": name, "elements": u.shape[1], "rmse": rel, "sign_agreement": agree,
                     "step_cosine_min": cos.min().item() if len(cos) else None,
                     "ep_rms": u.pow(2).mean().sqrt().item(),
                     "bptt_rms": g.pow(2).mean().sqrt().item()})
    return rows


def per_step_check(net, x: torch.Tensor, y: torch.Tensor, beta: float = 1e-3, T: int = 200,
                   K: int = 20) -> dict:
    """EP's and BPTT's per-step series on a mean-field float64 copy of ``net`` and their
    comparison: ``{"rows": [...], "ep": {...}, "bptt": {...}}`` (the series as tensors)."""
    check_positive("beta", beta)
    check_int_at_least("T", T, 1)
    check_int_at_least("steps", K, 1)
    if K > T:
        raise ValueError(f"--steps ({K}) must be <= --T ({T}): BPTT has only T steps to split")
    net = _mean_field_double(net)
    x = x.double()
    ep, inside = ep_per_step(net, x, y, beta, T, K)
    bp = bptt_per_step(net, x, y, T, K)
    return {"rows": compare(ep, bp, inside), "ep": ep, "bptt": bp, "inside": inside}


def plot_per_step(result: dict, path: str, n_elements: int = 4, seed: int = 0) -> bool:
    """EP's updates (solid) and BPTT's gradients (dashed) of a few elements of each tensor
    against the step, one panel per tensor; ``False`` without matplotlib."""
    from stochep.tools.plot import pyplot

    plt = pyplot()
    if plt is None:
        return False
    names = list(result["ep"])
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    gen = torch.Generator().manual_seed(seed)
    for ax, name in zip(axes.flat, names):
        u, g = result["ep"][name].flatten(1), result["bptt"][name].flatten(1)
        if name in result.get("inside", {}):
            u, g = u[:, result["inside"][name]], g[:, result["inside"][name]]
        moving = (g.abs().sum(0) > 0).nonzero().flatten()
        pool = moving if len(moving) else torch.arange(u.shape[1])
        pick = pool[torch.randperm(len(pool), generator=gen)[:n_elements]]
        steps = range(1, u.shape[0] + 1)
        for i, j in enumerate(pick.tolist()):
            c = f"C{i}"
            ax.plot(steps, u[:, j].numpy(), color=c, lw=1.5)
            ax.plot(steps, g[:, j].numpy(), color=c, lw=1.5, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step t")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("per-step updates: EP (solid) vs BPTT (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
