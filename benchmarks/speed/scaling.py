"""Scaling on CPU cores: samples/s of one training epoch with 1 and with K gloo processes of one
thread each, and with one process of T intra-op threads (``--threads``): the two ways one run
can use both cores of this machine.

Each configuration is a fresh ``torchrun --standalone`` launch of this script as a worker; the
worker trains ``--batches`` global batches of MNIST with :class:`~stochep.training.trainer.Trainer`
(evaluation excluded) and rank 0 reports the epoch's samples/s. Efficiency = rate / (cores x
rate of one core), cores being K processes or T threads.

    python benchmarks/speed/scaling.py [--preset mnist-1fc] [--nprocs 1 2] [--threads 2]
                                       [--batch 256] [--batches 20] [--tag TAG]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch


def worker(args) -> int:
    from stochep.tools.results import preset_subset
    from stochep.training.distributed import init_from_env
    from stochep.training.trainer import Trainer

    torch.set_num_threads(args.threads_per_process)
    init_from_env("cpu")
    cfg, data = preset_subset(args.preset, args.batch, args.batches)
    n = args.batch * args.batches
    tr = Trainer(cfg, data, None, progress=False)
    tr.train_epoch()  # warm-up (allocations, first-touch)
    import time
    t = time.perf_counter()
    tr.train_epoch()
    dt = time.perf_counter() - t
    if tr.dp.main:
        print("RESULT " + json.dumps({"world_size": tr.dp.world_size,
                                      "threads": args.threads_per_process, "samples": n,
                                      "seconds": dt, "samples_per_s": n / dt}), flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist-1fc")
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=256, help="global batch")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--threads", type=int, nargs="*", default=[],
                   help="also one process with each of these intra-op thread counts")
    p.add_argument("--tag", default="")
    p.add_argument("--threads-per-process", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    from stochep.tools.results import print_table, write_json
    rows = []
    configs = [(k, 1) for k in args.nprocs] + [(1, t) for t in args.threads]
    for k, threads in configs:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={k}", os.path.abspath(__file__), "--worker",
               "--preset", args.preset, "--batch", str(args.batch), "--batches", str(args.batches),
               "--threads-per-process", str(threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        rows.append(json.loads(next(ln for ln in out.splitlines()
                                    if ln.startswith("RESULT "))[7:]))
    base = rows[0]["samples_per_s"] / (rows[0]["world_size"] * rows[0]["threads"])
    for r in rows:
        r["speedup"] = r["samples_per_s"] / rows[0]["samples_per_s"]
        r["efficiency"] = r["samples_per_s"] / (r["world_size"] * r["threads"] * base)
    print_table(rows, ["world_size", "threads", "samples", "seconds", "samples_per_s",
                       "speedup", "efficiency"])
    write_json(f"scaling_{args.preset}{args.tag}.json", {"preset": args.preset,
                                                         "batch": args.batch, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
