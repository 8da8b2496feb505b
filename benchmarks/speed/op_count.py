"""Operators launched per phase step (the CPU proxy for GPU kernel launches): three training
batches of cifar10-5c-cpu-fast and mnist-2fc at batch 8 and T 6+2+2, counted two ways and
divided by the phase steps, for the engine (the rule's gradients and the optimizer step) and the
whole ``train_step`` (metrics and the finiteness check included):

- ``aten_ops``: every aten operator the profiler records, nested ones included (a conv2d counts
  its convolution, _convolution and mkldnn_convolution; views and allocations count);
- ``kernel_ops``: the operators that reach the backend (a dispatch mode sees each once), less
  those that launch no kernel (views, detach, empty allocations): the closer proxy for GPU
  launches.

``--compiled`` adds the count with ``compile=true``: the engine's kernels outside the dynamics
step (contrasts, optimizer, phase averages) as above, plus the kernels of the step as
torch.compile (inductor) generates it, read from the generated code: its fused kernels and the
library calls (matmuls, convolutions) it makes, one launch each. Each distinct step (the free
one, the nudged one) is compiled once for the batch's shape. On a GPU the same step is Triton
kernels instead of C++ ones; ``graphs=true`` then replays a step's kernels as one CUDA graph.
Compiling 5C takes several minutes on one core.

Writes op_count.json.

    OMP_NUM_THREADS=1 python benchmarks/speed/op_count.py [--tag TAG] [--compiled]
"""
from __future__ import annotations

import argparse
import re
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


# one launch per line of the generated wrapper that calls a fused kernel or a library kernel
LAUNCH = re.compile(r"^\s+(cpp_fused_\w+|triton_\w+\.run|extern_kernels\.\w+|torch\.ops\.[\w.]+"
                    r"|aten\.[\w.]+)\(", re.M)


def generated_launches(code: str) -> int:
    """Kernel launches of one call of an inductor-generated module (its ``call`` function)."""
    body = code[code.find("def call("):]
    end = body.find("\ndef ", 1)  # the next function, if any, is not part of the call
    return len(LAUNCH.findall(body if end < 0 else body[:end]))


def compiled_step(tr, xi, y) -> dict:
    """Kernels per phase step with the dynamics step compiled: the eager kernels outside the
    step plus, per step, the launches of its generated code (module docstring)."""
    from torch._inductor.utils import run_and_get_code

    dyn = tr.rule.dynamics
    eager = dyn._eager
    seen, calls = {}, []

    def recording(*args):  # counts the kernels each eager step runs, keeps one call per kind
        kind = args[5] is not None  # nudged (target given) or free
        seen.setdefault(kind, args)
        calls.append(kind)
        return eager(*args)

    dyn._eager = dyn._step = recording
    with KernelCounter() as total:
        tr.rule.gradients(tr.net, xi, y)
        tr.opt.step()
    dyn._eager = dyn._step = eager

    def again(args):  # the recorded call on a copy of its spike stream (the run's is not drawn)
        rng = args[3].fork() if args[3] is not None else None
        return args[:3] + (rng,) + args[4:]

    per_kind_eager, launches = {}, {}
    for kind, args in seen.items():
        with KernelCounter() as counter:
            eager(*again(args))
        per_kind_eager[kind] = counter.count
        step = torch.compile(eager, dynamic=False, fullgraph=True)
        _, codes = run_and_get_code(step, *again(args))
        launches[kind] = sum(generated_launches(c) for c in codes)
    steps = len(calls)
    outside = total.count - sum(per_kind_eager[k] for k in calls)
    compiled = outside + sum(launches[k] for k in calls)
    return {"kernel_ops_per_phase_step": compiled / steps,
            "outside_step_per_phase_step": outside / steps,
            "step_eager_kernels": {("nudged" if k else "free"): v for k, v in per_kind_eager.items()},
            "step_compiled_launches": {("nudged" if k else "free"): v for k, v in launches.items()}}


def count(name: str, shape, compiled: bool = False) -> dict:
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
    if compiled:
        out["engine_compiled_step"] = compiled_step(tr, xi, y)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", default="")
    p.add_argument("--compiled", action="store_true",
                   help="also count with the dynamics step compiled (minutes per preset)")
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = {name: count(name, PRESETS[name], args.compiled) for name in args.presets}
    write_json(f"op_count{args.tag}.json", {"presets": rows, "overrides": SHORT,
                                            "compiled": args.compiled})
    for name, r in rows.items():
        print(name, ", ".join(f"{k} {v['kernel_ops_per_phase_step']:.1f} kernel"
                              + (f" ({v['aten_ops_per_phase_step']:.1f} aten)"
                                 if "aten_ops_per_phase_step" in v else "")
                              for k, v in r.items()), "operators per phase step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
