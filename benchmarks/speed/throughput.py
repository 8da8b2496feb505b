"""Training throughput (samples/s): the stochep engine against the autograd-every-step reference.

Both run the same network, batch and two-phase EP schedule (T_free + T_nudge steps of Bernoulli
spikes) side by side in one process, alternating, so machine noise hits both alike. For networks
with max-pooling a second engine column reuses the pooling indices for ``--pool-every`` steps
(``Dynamics(pool_every=K)``, README "Speed"); 1 is the exact engine.

    python benchmarks/speed/throughput.py [--presets mnist-1fc mnist-2fc] [--batch-sizes 4 64 256]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from stochep.tools.results import best_time, print_table, write_json

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))

from reference import reference_ep_gradients

from stochep.engine.dynamics import Dynamics
from stochep.engine.rng import SpikeRNG
from stochep.rules.ep import EP, ep_gradients
from stochep.training.models import build_network
from stochep.training.presets import load_preset

INPUT_SHAPES = {"mnist": (784,), "fashion-mnist": (784,), "cifar10": (3, 32, 32)}


def measure(preset: str, batch: int, repeats: int, steps_scale: float, pool_every: int) -> dict:
    cfg = load_preset(preset)
    net = build_network(cfg, INPUT_SHAPES[cfg.dataset], 10)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *net.input_shape, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    T_free = max(1, int(cfg.T_free * steps_scale))
    T_nudge = max(1, int(cfg.T_nudge * steps_scale))
    ep = EP(cfg.beta, T_free, T_nudge, "two-phase")
    rng = SpikeRNG(0)
    pooled = Dynamics(pool_every=pool_every)

    def engine():
        return best_time(lambda: ep_gradients(net, x, y, ep, rng), repeats)

    def engine_pooled():
        if not net.pooled or pool_every == 1:
            return None
        return best_time(lambda: ep_gradients(net, x, y, ep, rng, dynamics=pooled), repeats)

    # engine, reference, engine again: the best of two engine runs brackets the reference run
    t_engine, t_pool = engine(), engine_pooled()
    t_ref = best_time(lambda: reference_ep_gradients(net, x, y, ep, gen), repeats)
    t_engine = min(t_engine, engine())
    if t_pool is not None:
        t_pool = min(t_pool, engine_pooled())
    train_size = 50_000 if cfg.dataset == "cifar10" else 60_000
    # per-step cost is what scales; three-phase presets run two nudged phases
    preset_steps = cfg.T_free + cfg.T_nudge * (2 if cfg.estimator == "three-phase" else 1)
    full = preset_steps / (T_free + T_nudge)
    row = {"preset": preset, "batch": batch, "T": T_free + T_nudge,
           "epoch_h_at_preset_T": train_size / (batch / t_engine) * full / 3600,
           "engine_samples_s": batch / t_engine, "reference_samples_s": batch / t_ref,
           "speedup": t_ref / t_engine}
    if t_pool is not None:
        row.update({"pool_every": pool_every, "engine_pool_samples_s": batch / t_pool,
                    "speedup_pool": t_ref / t_pool,
                    "epoch_h_pool": train_size / (batch / t_pool) * full / 3600})
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["mnist-1fc", "mnist-2fc"])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 64, 256])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="scale T_free and T_nudge (throughput per step is what matters)")
    p.add_argument("--pool-every", type=int, default=10,
                   help="engine variant that refreshes pooling indices every K steps")
    p.add_argument("--json", default="throughput.json")
    args = p.parse_args(argv)
    rows = [measure(pr, b, args.repeats, args.steps_scale, args.pool_every)
            for pr in args.presets for b in args.batch_sizes]
    print_table(rows, ["preset", "batch", "T", "engine_samples_s", "reference_samples_s",
                       "speedup", "epoch_h_at_preset_T", "engine_pool_samples_s", "speedup_pool",
                       "epoch_h_pool"])
    write_json(args.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
