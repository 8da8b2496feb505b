"""How much of the warm start (eq. 18) survives a frame's free phase: a trained event-MNIST
checkpoint's free phases on 1,000 generated digits, every frame after the first started from
gamma x the previous frame's free equilibrium and, in a second pass, from zero, with the same
spike stream (and in mean field). Reports, per frame, the relative distance of the two final
states (all layers) and how often the summed-score predictions agree, and in mean field the
distance after each step of frame 2.

    python benchmarks/events/warm_memory.py RUNDIR/checkpoint_best.pt [--gamma 0.3]
"""
from __future__ import annotations

import argparse
import sys

import torch

from stochep.data import load_dataset
from stochep.engine.rng import SpikeRNG
from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.build import build_dynamics
from stochep.training.checkpoint import load_checkpoint
from stochep.training.config import Config
from stochep.training.models import build_network


def rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum((x - y).pow(2).sum() for x, y in zip(a, b))
    den = sum(y.pow(2).sum() for y in b)
    return float((num / den).sqrt())


def run(net, dyn, x, gamma, steps, warm_steps, rng_seed):
    """Final free states per frame and the summed class scores (frames.py's evaluation)."""
    rng = None if rng_seed is None else SpikeRNG(rng_seed)
    neuron = net.neuron.mean_field() if rng is None else None
    state, scores, finals = None, 0.0, []
    for t in range(x.shape[1]):
        start = net.zero_states(len(x), x.dtype) if state is None else state
        free = dyn.relax(net, x[:, t], start, steps if t == 0 else warm_steps, rng, neuron=neuron)
        finals.append(free.final)
        scores = scores + net.class_scores(free.final[-1])
        state = [gamma * s for s in free.final] if gamma else None
    return finals, scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--gamma", type=float, default=0.3)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--json", default="event_mnist_warm_memory.json")
    args = p.parse_args(argv)
    ck = load_checkpoint(args.checkpoint)
    cfg = Config.from_dict(ck["config"])
    opts = {**cfg.data_options, "n_train": args.n, "n_test": 1}
    data = load_dataset("event-mnist", data_dir("mnist"), **opts)
    x = data.x_train
    net = build_network(cfg, data.input_shape, 10)
    net.load_state_dict(ck["model"])
    dyn = build_dynamics(cfg)
    warm_steps = cfg.T_free_warm or cfg.T_free
    rows = []
    with torch.no_grad():
        for mode, seed in (("mean field", None), ("spiking, shared spike stream", 123)):
            fw, sw = run(net, dyn, x, args.gamma, cfg.T_free, warm_steps, seed)
            fz, sz = run(net, dyn, x, 0.0, cfg.T_free, warm_steps, seed)
            agree = float((sw.argmax(1) == sz.argmax(1)).float().mean())
            per_frame = [round(rel(a, b), 4) for a, b in zip(fw[1:], fz[1:])]
            rows.append({"mode": mode, "rel_dist_frames_2_10": per_frame,
                         "prediction_agreement": round(agree, 4)})
        # mean field, frame 2: distance of the warm and zero starts after each step
        mf = net.neuron.mean_field()
        f1 = dyn.relax(net, x[:, 0], net.zero_states(len(x), x.dtype), cfg.T_free,
                       neuron=mf).final
        warm = [args.gamma * s for s in f1]
        zero = net.zero_states(len(x), x.dtype)
        decay = []
        for _ in range(warm_steps):
            warm = dyn.relax(net, x[:, 1], warm, 1, neuron=mf).final
            zero = dyn.relax(net, x[:, 1], zero, 1, neuron=mf).final
            decay.append(round(rel(warm, zero), 5))
    print_table(rows, list(rows[0]))
    print("mean field, frame 2, relative distance after each step:", decay)
    write_json(args.json, {
        "command": "python benchmarks/events/warm_memory.py " + " ".join(argv or sys.argv[1:]),
        "checkpoint_config": {k: ck["config"][k] for k in ("layers", "lam", "kappa", "T_free",
                                                           "T_free_warm", "gamma")},
        "gamma": args.gamma, "n_digits": args.n, "rows": rows,
        "mean_field_frame2_rel_dist_per_step": decay})
    return 0


if __name__ == "__main__":
    sys.exit(main())
