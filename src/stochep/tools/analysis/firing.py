"""``stochep analyze firing``: spike rasters and firing density against kappa (figure 4).

For each ``kappa`` in {0.5, 1, 2, 4} the same network trains briefly with that gain and without
rate calibration (``calibrate_rate = 0``: calibration would set every density to its target),
then runs ``samples`` random test images through a free and a nudged phase. Reported per kappa:
the firing density of the first hidden layer (spikes per neuron per step, over both phases and
all samples) and, for the raster, the spiking neurons (of the first 100) at each step of the
first sample. Paper (figure 4): density 0.04 at kappa 0.5, rising to 0.26 at kappa 4.
"""
from __future__ import annotations

from .common import Setup, save, test_batch, train_briefly, trajectory

KAPPAS = (0.5, 1.0, 2.0, 4.0)
RASTER_NEURONS = 100


def run(setup: Setup, out_dir: str, kappas=KAPPAS) -> dict:
    result = {"analysis": "firing", "preset": setup.cfg.preset, "samples": setup.samples,
              "epochs": setup.epochs, "train_subset": setup.train_subset, "kappa": {}}
    for k in kappas:
        tr, acc = train_briefly(setup, kappa=float(k), calibrate_rate=0.0)
        x, y = test_batch(tr.data, tr.net, setup.samples)
        rec = trajectory(tr, x, y)
        spikes = rec["spikes"][0]  # [T, B, n]
        tf = rec["T_free"]
        raster = [row.nonzero().flatten().tolist() for row in spikes[:, 0, :RASTER_NEURONS]]
        result["kappa"][str(k)] = {
            "test_accuracy": acc, "density": spikes.mean().item(),
            "density_free": spikes[:tf].mean().item(), "density_nudge": spikes[tf:].mean().item(),
            "raster": raster}
    result.update(T_free=setup.cfg.T_free, T_nudge=setup.cfg.T_nudge)

    def draw(plt):
        ks = list(result["kappa"])
        fig, axes = plt.subplots(1, len(ks) + 1, figsize=(3.2 * (len(ks) + 1), 3.2))
        for ax, k in zip(axes, ks):
            r = result["kappa"][k]
            pts = [(t, n) for t, row in enumerate(r["raster"]) for n in row]
            if pts:
                ax.scatter(*zip(*pts), s=1.5, c="k", marker="|")
            ax.axvline(setup.cfg.T_free - 0.5, color="orange", ls="--", lw=1)
            ax.set_title(f"kappa {k}: density {r['density']:.3f}", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylim(-1, RASTER_NEURONS)
        axes[0].set_ylabel("hidden neuron")
        axes[-1].plot([float(k) for k in ks], [result["kappa"][k]["density"] for k in ks], "o-")
        axes[-1].set_xscale("log", base=2)
        axes[-1].set_xlabel("kappa")
        axes[-1].set_ylabel("firing density")
        fig.tight_layout()
        return fig

    result["files"] = save(result, out_dir, "firing", draw)
    return result
