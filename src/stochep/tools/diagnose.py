"""Why does a net (not) learn? Per-layer activity and gradient-quality measurements.

- :func:`~stochep.training.activity.layer_activity` (the trainer's per-layer monitor): firing
  rate and the fraction of neurons pinned at each bound of the state box, per layer.
- :func:`gradient_report`: on one batch, per weight tensor, the cosine and norm ratio of
  (a) the stochastic EP estimate against the mean-field EP estimate (spike noise),
  (b) the stochastic and (c) the mean-field EP estimate against BPTT of the mean-field dynamics
  (estimator bias), and the signal-to-noise ratio ``|mean| / std`` of the stochastic estimate
  over several spike seeds.
"""
from __future__ import annotations

import copy

import torch

from stochep.engine.record import record
from stochep.engine.rng import SpikeRNG
from stochep.rules.bptt import bptt_gradients
from stochep.rules.ep import EP, ep_gradients
from stochep.training.activity import activity_warnings, layer_activity


def _weight_grads(net) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().flatten().double().clone()
            for n, p in net.named_parameters() if n.endswith("weight")}


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


def _ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.norm() / b.norm().clamp_min(1e-300)).item()


def mean_field_copy(net, dtype=torch.float64):
    """A copy of ``net`` with mean-field (rate) neurons, in ``dtype``."""
    mf = copy.deepcopy(net).to(dtype)
    mf.neuron = mf.neuron.mean_field()
    return mf


def gradient_report(net, x: torch.Tensor, y: torch.Tensor, ep: EP, seeds: int = 4,
                    T_bptt: int | None = None, sign_seed: int = 0,
                    dtype: torch.dtype = torch.float64, dynamics=None) -> dict:
    """Per-weight gradient quality of the EP estimate on one batch (see the module docstring).

    The mean-field estimate uses the same ``ep`` (beta, estimator, phase lengths); every run
    draws its random-sign beta from the same ``sign_seed``, so only the spikes differ. A
    mean-field ``net`` gives cosine 1 against itself and an SNR capped at 1e9. BPTT runs ``T_bptt`` (default ``T_free``)
    mean-field steps; the mean-field runs use ``dtype`` (float64; float32 is several times
    faster on wide conv nets, at the cost of ~1e-6 relative precision). Returns ``{"layers": [...], "cosine_min_vs_bptt": v}`` where
    ``v`` is the smallest per-layer cosine of the *mean-field* estimate against BPTT.
    ``dynamics``: the phases' update order and pooling reuse (``Dynamics``; default synchronous,
    exact), for both estimates; BPTT always runs synchronous steps.
    """
    mf = mean_field_copy(net, dtype)
    xd = x.to(dtype)
    ep_gradients(mf, xd, y, ep, sign_generator=torch.Generator().manual_seed(sign_seed),
                 dynamics=dynamics)
    g_mf = _weight_grads(mf)
    bptt_gradients(mf, xd, y, T_bptt or ep.T_free)
    g_bp = _weight_grads(mf)
    runs = []
    for s in range(seeds if net.neuron.stochastic else 2):  # a mean-field net: 2 equal runs
        ep_gradients(net, x, y, ep, SpikeRNG(s, x.device), torch.Generator().manual_seed(sign_seed),
                     dynamics=dynamics)
        runs.append(_weight_grads(net))
    rows = []
    for name in g_mf:
        row = {"param": name, "mf_vs_bptt_cos": _cos(g_mf[name], g_bp[name]),
               "mf_vs_bptt_norm": _ratio(g_mf[name], g_bp[name])}
        stack = torch.stack([r[name] for r in runs])
        row["stoch_vs_mf_cos"] = sum(_cos(r[name], g_mf[name]) for r in runs) / len(runs)
        row["stoch_vs_mf_norm"] = sum(_ratio(r[name], g_mf[name]) for r in runs) / len(runs)
        row["stoch_vs_bptt_cos"] = sum(_cos(r[name], g_bp[name]) for r in runs) / len(runs)
        noise = (stack - stack.mean(0)).pow(2).sum(1).mean().sqrt()
        row["snr"] = min((stack.mean(0).norm() / noise.clamp_min(1e-300)).item(), 1e9)
        rows.append(row)
    return {"layers": rows, "cosine_min_vs_bptt": min(r["mf_vs_bptt_cos"] for r in rows)}


def diagnose(net, x: torch.Tensor, y: torch.Tensor, ep: EP, seeds: int = 4,
             T_bptt: int | None = None, dtype: torch.dtype = torch.float64,
             dynamics=None) -> dict:
    """Free-phase activity (with the net's own spikes) and :func:`gradient_report`, per layer."""
    rec = record(net, x, ep.T_free, seed=0, dynamics=dynamics)
    states = [s[-1] for s in rec.states]
    rep = gradient_report(net, x, y, ep, seeds, T_bptt, dtype=dtype, dynamics=dynamics)
    for row, act in zip(rep["layers"], layer_activity(net, states)):
        row.update(act)
    rep["warnings"] = activity_warnings(layer_activity(net, states))
    return rep


COLUMNS = (("param", "{:<24}"), ("rate", "{:>7.3f}"), ("at_low", "{:>7.2f}"),
           ("at_high", "{:>8.2f}"), ("stoch_vs_mf_cos", "{:>16.3f}"),
           ("stoch_vs_mf_norm", "{:>17.2f}"), ("stoch_vs_bptt_cos", "{:>18.3f}"),
           ("mf_vs_bptt_cos", "{:>15.3f}"), ("mf_vs_bptt_norm", "{:>16.2f}"),
           ("snr", "{:>7.2f}"))


def format_report(rep: dict) -> str:
    """The per-layer table of :func:`diagnose`, then warnings, then ``cosine_min_vs_bptt=``."""
    cols = [(k, f) for k, f in COLUMNS if k in rep["layers"][0]]
    widths = [len(f.format(1.0 if k != "param" else "")) for k, f in cols]
    lines = ["".join(k.rjust(w) if k != "param" else k.ljust(w)
                     for (k, _), w in zip(cols, widths))]
    for row in rep["layers"]:
        lines.append("".join(f.format(row[k]) for k, f in cols))
    lines += [f"warning: {m}" for m in rep.get("warnings", [])]
    lines.append(f"cosine_min_vs_bptt={rep['cosine_min_vs_bptt']:.6f}")
    return "\n".join(lines)
