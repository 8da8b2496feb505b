"""How many free-phase steps the samples of a trained net need: per-sample stopping measured.

For each ``tol``, the free phase of a batch of validation images runs with ``stop=sample`` (each
sample stops once its largest ``|xi_t - xi_{t-5}|`` over all layers is below ``tol``, spikes
included) from zeros and from the bottom-up sweep, and the script reports the mean and the
spread of the steps per sample, and the prediction agreement with (and largest state distance
from) a 120-step mean-field relaxation, the equilibrium the phase is meant to reach.

    OMP_NUM_THREADS=1 python benchmarks/learning/settle_steps.py --checkpoint RUN/checkpoint_last.pt \\
        --tol 0 0.05 0.1 0.2 --steps 60 --json settle_mnist-1fc.json
"""
from __future__ import annotations

import argparse

import torch

from stochep.engine.dynamics import Dynamics
from stochep.engine.rng import SpikeRNG
from stochep.tools.results import write_json
from stochep.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--tol", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    tr = Trainer.from_checkpoint(a.checkpoint)
    net = tr.net
    x = tr.inputs(tr.val[0][:a.batch])
    mf = net.neuron.mean_field()
    rows = []
    with torch.no_grad():
        ref = Dynamics().relax(net, x, net.zero_states(len(x)), 120, neuron=mf).final
        ref_pred = net.class_scores(ref[-1]).argmax(1)
        for start in ("zeros", "sweep"):
            for tol in a.tol:
                dyn = Dynamics(tol=tol, stop="sample", start=start)
                res = dyn.relax(net, x, dyn.initial(net, x), a.steps, SpikeRNG(0),
                                average_last=10)
                steps = res.sample_steps.float()
                pred = net.class_scores(res.average[-1]).argmax(1)
                gap = max((s - r).abs().max().item() for s, r in zip(res.average, ref))
                row = {"start": start, "tol": tol, "mean_steps": steps.mean().item(),
                       "min_steps": steps.min().item(), "max_steps": steps.max().item(),
                       "agree_with_mean_field": (pred == ref_pred).float().mean().item(),
                       "max_state_gap": gap}
                rows.append(row)
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
                      flush=True)
    if a.json:
        write_json(a.json, {"checkpoint": a.checkpoint, "batch": a.batch, "steps": a.steps,
                            "rows": rows})


if __name__ == "__main__":
    main()
