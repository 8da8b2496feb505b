"""Where one training epoch's time goes: cProfile of a real ``Trainer`` epoch (evaluation on
a small test subset included), grouped into the parts the speed issue names.

    OMP_NUM_THREADS=1 python benchmarks/speed/profile_epoch.py [--preset mnist-1fc] [--batch 256] [--ops 12]

``--ops N`` also lists the N ATen operators with the most self time (torch.profiler, a second
epoch), so a GEMM-bound epoch shows as ``aten::addmm`` / ``aten::mm`` and anything else stands
out.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys

import torch

from stochep.tools.results import preset_subset
from stochep.training.trainer import Trainer

# (label, file path suffix, function name): cumulative time of that function
PARTS = [("train_epoch", "training/trainer.py", "train_epoch"), ("phases", "rules/ep.py", "phase"),
         ("  spike sampling", "neurons/hard_sigmoid.py", "sample"),
         ("contrast", "rules/ep.py", "contrast_difference"),
         ("optimizer", "optimizer.py", "wrapper"),
         ("finiteness checks", "training/trainer.py", "check_finite"),
         ("layer metrics", "training/activity.py", "layer_activity"),
         ("evaluation", "training/trainer.py", "evaluate")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist-1fc")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--ops", type=int, default=0, help="list the N ATen ops with most self time")
    args = p.parse_args(argv)
    cfg, data = preset_subset(args.preset, args.batch, args.batches)
    data.x_test, data.y_test = data.x_test[:2000], data.y_test[:2000]
    tr = Trainer(cfg, data, None, progress=True)
    prof = cProfile.Profile()
    prof.enable()
    tr.fit()
    prof.disable()
    stats = pstats.Stats(prof).stats
    cum = {}
    for (fname, _, func), (_, _, _, ct, _) in stats.items():
        for label, suffix, name in PARTS:
            if fname.endswith(suffix) and func == name:
                cum[label] = cum.get(label, 0.0) + ct
    total = cum.get("train_epoch", 0.0)
    print(f"{args.preset}, batch {args.batch}, {args.batches} batches, {torch.get_num_threads()} "
          "thread(s); share of train_epoch (evaluation is outside it)")
    for label, _, _ in PARTS:
        t = cum.get(label, 0.0)
        print(f"{label:20s} {t:7.2f} s  {100 * t / total:5.1f}%")
    if args.ops:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof_ops:
            tr.train_epoch()
        rows = sorted(prof_ops.key_averages(), key=lambda e: -e.self_cpu_time_total)
        whole = sum(e.self_cpu_time_total for e in rows)
        print(f"ATen ops by self time, one more epoch ({whole / 1e6:.2f} s in ops)")
        for e in rows[:args.ops]:
            print(f"{e.key:32s} {e.self_cpu_time_total / 1e6:7.2f} s  "
                  f"{100 * e.self_cpu_time_total / whole:5.1f}%  x{e.count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
