"""``stochep analyze stability``: membrane-potential stability of the neuron models (figure 3).

Each model (the paper's stochastic neuron, LIF with a low-pass trace, predictive coding with
step-size annealing, annealing only; ``neurons.py``, ``lif.py``, ``sigma_delta.py``) trains the
same network briefly, then runs ``samples`` random test images through a free and a nudged
phase. The heatmap is the change of the first hidden layer's state per step, ``|xi_t -
xi_{t-1}|`` averaged over the samples (x: step, y: neuron; dashed line: the nudge begins). The
state is what EP's contrasts read (for LIF the trace ``r / kappa``, not the reset potential).

One number per model: the mean ``|dxi|`` over the last 20% of each phase's steps. The whole
trajectories are saved to ``stability_trajectories.pt`` (float16 ``[T + 1, samples, neurons]``).
"""
from __future__ import annotations

import os

import torch

from .common import Setup, save, test_batch, train_briefly, trajectory

MODELS = ("hard-sigmoid", "lif", "predictive-coding", "sigma-delta")
TAIL = 0.2  # the share of each phase's last steps the stability number averages


def tail_change(changes: torch.Tensor, t_free: int, t_nudge: int) -> dict:
    """Mean ``|dxi|`` over the last 20% of the free and of the nudged phase (``changes``:
    ``[T, B, n]``, steps 1..T)."""
    out = {}
    for phase, lo, n in (("free", 0, t_free), ("nudge", t_free, t_nudge)):
        k = max(1, round(TAIL * n))
        out[phase] = changes[lo + n - k:lo + n].abs().mean().item()
    out["both"] = (out["free"] + out["nudge"]) / 2
    return out


def run(setup: Setup, out_dir: str, models=MODELS) -> dict:
    result = {"analysis": "stability", "preset": setup.cfg.preset, "samples": setup.samples,
              "epochs": setup.epochs, "train_subset": setup.train_subset, "models": {}}
    maps, trajectories = {}, {}
    for name in models:
        tr, acc = train_briefly(setup, neuron=name)
        x, y = test_batch(tr.data, tr.net, setup.samples)
        rec = trajectory(tr, x, y)
        hidden = rec["states"][0]
        changes = hidden[1:] - hidden[:-1]
        maps[name] = changes.abs().mean(1).T.cpu()  # [neurons, T]
        trajectories[name] = hidden.half().cpu()
        result["models"][name] = {"test_accuracy": acc, "tail_mean_abs_change":
                                  tail_change(changes, rec["T_free"], rec["T_nudge"])}
    result.update(T_free=setup.cfg.T_free, T_nudge=setup.cfg.T_nudge)
    os.makedirs(out_dir, exist_ok=True)
    torch.save(trajectories, os.path.join(out_dir, "stability_trajectories.pt"))

    def draw(plt):
        fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 3.4), squeeze=False)
        top = torch.quantile(torch.cat([m.flatten() for m in maps.values()]), 0.99).item()
        top = top or 1.0  # colour scale: the 99th percentile, so the early transient does not hide the rest
        for ax, (name, m) in zip(axes[0], maps.items()):
            im = ax.imshow(m.numpy(), aspect="auto", cmap="magma", vmin=0, vmax=top,
                           interpolation="nearest")
            ax.axvline(setup.cfg.T_free - 0.5, color="yellow", ls="--", lw=1)
            num = result["models"][name]["tail_mean_abs_change"]["both"]
            ax.set_title(f"{name}\nmean |dxi| (last 20%): {num:.4f}", fontsize=9)
            ax.set_xlabel("step")
        axes[0][0].set_ylabel("hidden neuron")
        fig.colorbar(im, ax=axes[0].tolist(), label="|dxi| per step")
        return fig

    result["files"] = save(result, out_dir, "stability", draw) + \
        [os.path.join(out_dir, "stability_trajectories.pt")]
    return result
