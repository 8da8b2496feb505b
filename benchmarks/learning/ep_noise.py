"""How noisy is the stochastic EP gradient, and how much do the variance reductions help?

For one batch of real data, compares the EP gradient with Bernoulli spikes (several spike seeds)
against the mean-field EP gradient of the same network, layer by layer: the mean cosine and the
norm ratio |g_spiking| / |g_mean_field| (1 = no excess noise). Variants: plain, ``shared_noise``,
``average_last=k``, both. Prints a table and writes JSON.

    python benchmarks/learning/ep_noise.py --preset cifar10-5c --set "layers=[...]" --set init_scale=0.8
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch

from stochep.data import load_dataset
from stochep.engine.rng import SpikeRNG
from stochep.rules.ep import EP, ep_gradients
from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.models import build_network
from stochep.training.presets import load_preset


def _grads(net) -> list[torch.Tensor]:
    return [p.grad.clone() for p in net.parameters()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cifar10-5c")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, default=3, help="spike seeds per variant")
    p.add_argument("--betas", type=float, nargs="+", default=[0.05, 0.2])
    p.add_argument("--average", type=int, default=10, help="k of the average_last variant")
    p.add_argument("--mf-scale", type=int, default=3,
                   help="the mean-field reference runs this many times longer phases")
    p.add_argument("--json", default="ep_noise.json")
    args = p.parse_args(argv)
    cfg = load_preset(args.preset)
    cfg.apply_overrides(args.set).validate()
    data = load_dataset(cfg.dataset, data_dir(cfg.dataset))
    x, y = data.x_train[:args.batch], data.y_train[:args.batch]
    net = build_network(cfg, data.input_shape, data.n_classes, data.embedding)
    x = x.reshape(len(x), *net.input_shape)
    mf = copy.deepcopy(net)
    mf.neuron = net.neuron.mean_field()
    names = [n for n, _ in net.named_parameters()]
    variants = {"plain": (1, False), "shared_noise": (1, True),
                f"average_last={args.average}": (args.average, False),
                "both": (args.average, True)}
    rows = []
    for beta in args.betas:
        s = args.mf_scale
        ep_gradients(mf, x, y, EP(beta, cfg.T_free * s, cfg.T_nudge * s, "three-phase"))
        ref = _grads(mf)
        for label, (k, shared) in variants.items():
            ep = EP(beta, cfg.T_free, cfg.T_nudge, "three-phase", k, shared)
            runs = []
            for seed in range(args.seeds):
                ep_gradients(net, x, y, ep, SpikeRNG(seed))
                runs.append(_grads(net))
            for i, name in enumerate(names):
                if not name.endswith("weight"):
                    continue
                cos = [torch.nn.functional.cosine_similarity(r[i].flatten(), ref[i].flatten(),
                                                             dim=0).item() for r in runs]
                ratio = [(r[i].norm() / ref[i].norm()).item() for r in runs]
                rows.append({"beta": beta, "variant": label, "parameter": name,
                             "cosine": sum(cos) / len(cos), "norm_ratio": sum(ratio) / len(ratio)})
            print(f"beta {beta} {label} done", flush=True)
    print_table(rows, ["beta", "variant", "parameter", "cosine", "norm_ratio"])
    write_json(args.json, {"preset": args.preset, "overrides": args.set, "batch": args.batch,
                           "seeds": args.seeds, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
