"""Operators launched per phase step (the CPU proxy for GPU kernel launches): three training
batches of cifar10-5c-cpu-fast and mnist-2fc at batch 8 and T 6+2+2, counted two ways and
divided by the phase steps, for the engine (the rule's gradients and the optimizer step) and the
whole ``train_step`` (metrics and the finiteness check included):

- ``aten_ops``: every aten operator the profiler records, nested ones included (a conv2d counts
  its convolution, _convolution and mkldnn_convolution; views and allocations count);
- ``kernel_ops``: the operators that reach the backend (a dispatch mode sees each once), less
  those that launch no kernel (views, detach, empty allocations): the closer proxy for GPU
  launches.

Writes op_count.json.

    OMP_NUM_THREADS=1 python benchmarks/speed/op_count.py [--tag TAG]
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from stochep import Dataset, Trainer, load_preset
from stochep.tools.results import write_json

PRESETS = {"cifar10-5c-cpu-fast": (3, 32, 32), "mnist-2fc": (784,)}
SHORT = ["calibrate_rate=0.0", "val_fraction=0.0", "T_free=6", "T_nudge=2", "average_last=2",
         "batch_size=8"]


NO_KERNEL = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach",
             "alias", "lift_fresh", "_reshape_alias", "promote_types"}


class KernelCounter(TorchDispatchMode):
    """Counts the operators that reach the backend and launch work (not views, not bare
    allocations)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in NO_KERNEL:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count(name: str, shape) -> dict:
    cfg = load_preset(name)
    cfg.apply_overrides(SHORT)
    x, y = torch.rand(8, *shape, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 10
    tr = Trainer(cfg, Dataset(cfg.dataset, x, y, x, y, 10), progress=False)
    xi = tr.inputs(x)
    steps = cfg.T_free + 2 * cfg.T_nudge

    def engine():
        tr.rule.gradients(tr.net, xi, y)
        tr.opt.step()

    out = {}
    for label, fn in (("engine", engine), ("train_step", getattr(tr, "train_step", None))):
        if fn is None:
            continue
        fn = fn if label == "engine" else (lambda: tr.train_step(x, y))
        fn()  # warm-up: allocations, caches
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                fn()
        ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
        with KernelCounter() as kc:
            for _ in range(3):
                fn()
        out[label] = {"aten_ops_per_batch": ops / 3, "aten_ops_per_phase_step": ops / 3 / steps,
                      "kernel_ops_per_batch": kc.count / 3,
                      "kernel_ops_per_phase_step": kc.count / 3 / steps}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = {name: count(name, shape) for name, shape in PRESETS.items()}
    for name, r in rows.items():
        print(name, ", ".join(f"{k} {v['aten_ops_per_phase_step']:.1f} aten, "
                              f"{v['kernel_ops_per_phase_step']:.1f} kernel"
                              for k, v in r.items()), "operators per phase step")
    write_json(f"op_count{args.tag}.json", {"presets": rows, "overrides": SHORT})
    return 0


if __name__ == "__main__":
    sys.exit(main())
