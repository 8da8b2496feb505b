"""``stochep train`` end to end against the autograd-every-step reference, side by side.

The engine column is a real training epoch of :class:`~stochep.training.trainer.Trainer` (shuffling,
both phases, contrast, optimizer, metrics; evaluation excluded) on the first
``batches x batch`` MNIST training images. The reference column trains the same network on the
same batches with ``tests/reference.py`` (every step recomputes the energy and takes its
gradient with autograd, ``torch.bernoulli`` spikes) and the same optimizer. They alternate, best
of ``--repeats``, so machine noise hits both alike.

An entry ``ENGINE:REFERENCE`` (e.g. ``mnist-2fc-fast:mnist-2fc``) trains the engine with one
preset and the reference with another's relaxation (beta, steps, estimator) on the same network:
a preset with fewer steps against the paper-faithful one, whose accuracy it nearly matches at
equal epochs (docs/speed.md). Plain ``NAME`` compares both at the same settings.

    python benchmarks/speed/end_to_end.py [--presets mnist-1fc mnist-2fc mnist-2fc-fast:mnist-2fc] \
        [--batch 256] [--batches 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from stochep.tools.results import data_dir, print_table, write_json

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))

from reference import reference_ep_gradients

from stochep.rules.ep import EP
from stochep.training.optim import make_optimizer
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def measure(entry: str, batch: int, batches: int, repeats: int) -> dict:
    preset, _, against = entry.partition(":")
    cfg = load_preset(preset)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides([f"batch_size={batch}", "val_fraction=0", "augment=false"]).validate()
    ref_cfg = load_preset(against or preset)
    if ref_cfg.layers != cfg.layers or ref_cfg.dataset != cfg.dataset:
        raise SystemExit(f"end_to_end: {entry}: the two presets must share dataset and layers")
    data = cfg.load_data()
    n = batch * batches
    data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    tr = Trainer(cfg, data, None, progress=False)
    ep = EP(ref_cfg.beta, ref_cfg.T_free, ref_cfg.T_nudge, ref_cfg.estimator)
    ref_opt = make_optimizer(cfg, tr.net)
    gen = torch.Generator().manual_seed(0)
    sign = torch.Generator().manual_seed(1)

    def engine() -> float:
        t = time.perf_counter()
        tr.train_epoch()
        return time.perf_counter() - t

    def reference() -> float:
        t = time.perf_counter()
        for b in range(batches):
            x = tr.inputs(data.x_train[b * batch:(b + 1) * batch])
            y = data.y_train[b * batch:(b + 1) * batch]
            s = 1.0 if ep.estimator != "random-sign" else \
                float(torch.randint(0, 2, (1,), generator=sign)) * 2 - 1
            reference_ep_gradients(tr.net, x, y, ep, gen, sign=s)
            ref_opt.step()
        return time.perf_counter() - t

    t_eng, t_ref = [], []
    for _ in range(repeats):
        t_eng.append(engine())
        t_ref.append(reference())
    e, r = min(t_eng), min(t_ref)
    return {"preset": preset, "batch": batch, "samples": n,
            "T": f"{cfg.T_free}+{cfg.T_nudge}", "update": cfg.update, "estimator": cfg.estimator,
            "reference_preset": ref_cfg.preset,
            "reference_T": f"{ref_cfg.T_free}+{ref_cfg.T_nudge}",
            "train_samples_s": n / e, "reference_samples_s": n / r, "speedup": r / e}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["mnist-1fc", "mnist-2fc"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default="end_to_end.json")
    args = p.parse_args(argv)
    rows = [measure(pr, args.batch, args.batches, args.repeats) for pr in args.presets]
    print_table(rows, list(rows[0]))
    write_json(args.json, {"threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
