"""What separate feedback weights cost the symmetric path: the down drive of dense and conv
layers reads ``Interaction.down_weight()`` (the feedback if one is set, else ``weight``) where it
read ``self.weight``. Times, side by side in one process, that lookup against the attribute read
it replaced, and one synchronous step of the mnist-1fc network (batch 32, spiking) with and
without learned feedback, so the lookup's share of a step is a measured figure.

    OMP_NUM_THREADS=1 python benchmarks/speed/feedback_overhead.py
"""
from __future__ import annotations

import argparse
import time

import torch

from stochep.engine.dynamics import phase_constants, step
from stochep.engine.rng import SpikeRNG
from stochep.rules.vf import add_feedback
from stochep.tools.results import print_table, write_json
from stochep.training.config import Config
from stochep.training.models import build_network


def per_call(fn, n: int) -> float:
    """Best of three: seconds per call of ``fn`` over ``n`` calls."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    cfg = Config(layers=[512], n_perclass=10, init_scale=0.5)
    rows = []
    for feedback in (False, True):
        net = build_network(cfg, (784,), 10)
        if feedback:
            add_feedback(net, "learned", "random", 0, 0.5)
        x = torch.rand(args.batch, 784)
        rng = SpikeRNG(0)
        with torch.no_grad():
            consts = phase_constants(net, x)
            states = net.zero_states(args.batch)
            step_s = per_call(lambda: step(net, consts, states, rng), args.steps)
        inter = net.interactions[1]
        rows.append({"feedback": feedback, "step_us": step_s * 1e6,
                     "down_weight_us": per_call(lambda: inter.down_weight(), 100000) * 1e6,
                     "weight_attr_us": per_call(lambda: inter.weight, 100000) * 1e6})
    for r in rows:
        r["lookup_share_of_step"] = (r["down_weight_us"] - r["weight_attr_us"]) / r["step_us"]
    print_table(rows, ["feedback", "step_us", "down_weight_us", "weight_attr_us",
                       "lookup_share_of_step"])
    write_json("feedback_overhead.json", {"batch": args.batch, "rows": rows})


if __name__ == "__main__":
    main()
