"""First contact with a GPU: the checks to run before check.sh, each in a few seconds, each
recorded whatever happens to the others (docs/gpu.md). One JSON, OUT/gpu_first_contact.json:

- ``nccl``: a one-process group (NCCL on a GPU, gloo on the CPU) all-reduces a float64 tensor
  made on the process's device, as ``DataParallel.sum`` does every epoch;
- ``syncs``: ``torch.cuda.set_sync_debug_mode("warn")`` over one tiny training epoch: every
  host sync it reports, by source line;
- ``profile``: 20 training steps of cifar10-5c-cpu-fast (quick: 5 steps at a few phase steps)
  under the profiler: operator and kernel launches per step, CPU against device time;
- ``diagnose``: ``stochep diagnose`` on the device;
- ``compile``: torch.compile of one phase step, timed with a synchronize, recompiles counted
  (skipped on a CPU unless --with-compile: compiling takes minutes there);
- ``graphs``: ``graphs=true`` (the step as a CUDA graph) against eager on cifar10-5c steps:
  samples/s and kernel launches against graph replays per batch (GPU only, as ``compile``);
- ``bf16_uniform``: the largest uniform the spike stream draws in bf16 and in float32 (spikes
  use float32 draws: a bf16 draw can round to 1.0);
- ``deterministic``: two short cifar10-5c-cpu-fast runs with ``deterministic=true``: equal
  weights, and their time.

    python benchmarks/gpu/first_contact.py --out OUT [--device cuda] [--quick] [--with-compile]
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from check import Clock, sync, timed, write  # noqa: E402 -- the shared GPU-script helpers


def _cifar_trainer(device: str, quick: bool, extra=()):
    from stochep import Dataset, Trainer, load_preset

    cfg = load_preset("cifar10-5c-cpu-fast")
    cfg.apply_overrides([f"device={device}", "calibrate_rate=0.0", "val_fraction=0.0",
                         "epochs=1", *(["T_free=6", "T_nudge=2", "average_last=2"] if quick
                                       else []), *extra])
    g = torch.Generator().manual_seed(0)
    n = cfg.batch_size * (2 if quick else 4)
    x = torch.rand(n, 3, 32, 32, generator=g)
    y = torch.arange(n) % 10
    return Trainer(cfg, Dataset("cifar10", x, y, x[:8], y[:8], 10), progress=False)


def check_nccl(args) -> dict:
    import torch.distributed as dist

    from stochep.training.distributed import DataParallel, backend_for, rank_device

    dev = rank_device(args.device)
    backend = backend_for(dev)
    store = tempfile.mkdtemp(dir=args.out)
    if backend == "nccl":
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", init_method=f"file://{store}/store", rank=0,
                                world_size=1, device_id=dev)
    else:
        dist.init_process_group("gloo", init_method=f"file://{store}/store", rank=0,
                                world_size=1)
    try:
        dp = DataParallel(args.device)
        t = torch.tensor([1.5, 2.0], dtype=torch.float64, device=dp.device)
        dist.all_reduce(t)
        return {"backend": backend, "tensor_device": str(t.device), "sum": t.tolist()}
    finally:
        dist.destroy_process_group()


def check_syncs(args) -> dict:
    if not torch.cuda.is_available() or torch.device(args.device).type != "cuda":
        return {"skipped": "no CUDA device: there are no host syncs to find"}
    tr = _cifar_trainer(args.device, True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            tr.fit()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    where = collections.Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught
                                if "synchroniz" in str(w.message))
    return {"batches": tr.batches_per_epoch(), "syncs": sum(where.values()),
            "by_line": dict(where.most_common(30))}


def check_profile(args) -> dict:
    from torch.profiler import ProfilerActivity, profile

    tr = _cifar_trainer(args.device, args.quick)
    steps = 5 if args.quick else 20
    x, y = tr.data.x_train[:tr.cfg.batch_size], tr.data.y_train[:tr.cfg.batch_size]
    tr.train_step(x, y)  # warm-up
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if tr.device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            tr.train_step(x, y)
        sync(tr.device)
    events = prof.key_averages()
    ops = sum(e.count for e in events if e.key.startswith("aten::"))
    kernels = sum(e.count for e in events if getattr(e, "device_type", None) is not None
                  and "CUDA" in str(e.device_type) and not e.key.startswith("aten::"))
    phase_steps = tr.cfg.T_free + 2 * tr.cfg.T_nudge
    top = sorted(events, key=lambda e: e.count, reverse=True)[:15]
    return {"steps": steps, "phase_steps_per_batch": phase_steps,
            "aten_ops_per_batch": ops / steps, "aten_ops_per_phase_step": ops / steps / phase_steps,
            "kernels_per_batch": kernels / steps if kernels else None,
            "cpu_time_s": sum(e.self_cpu_time_total for e in events) / 1e6 / steps,
            "device_time_s": (sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e6
                              / steps) if tr.device.type == "cuda" else None,
            "most_called": {e.key: e.count / steps for e in top}}


def check_diagnose(args) -> dict:
    from stochep.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["diagnose", "--batch", "8", "--seeds", "2", "--set", f"device={args.device}",
                     "--set", "layers=[32]", "--set", "T_free=10", "--set", "T_nudge=4",
                     "--json", "-"])
    return {"exit_code": code, "output_tail": out.getvalue()[-800:]}


def check_compile(args) -> dict:
    if torch.device(args.device).type != "cuda" and not args.with_compile:
        return {"skipped": "on a CPU compiling takes minutes; --with-compile to time it anyway"}
    os.environ.setdefault("TORCH_LOGS", "recompiles")
    from stochep import Config, Trainer
    from stochep.data import load_dataset

    data = load_dataset("digits")
    tr = Trainer(Config(device=args.device, compile=True, epochs=1, layers=[64]), data,
                 progress=False)
    x, y = data.x_train[:32], data.y_train[:32]
    first = timed(lambda: tr.train_step(x, y), args.device)
    later = min(timed(lambda: tr.train_step(x, y), args.device) for _ in range(3))
    dyn = tr.dynamics
    return {"first_step_s": first, "step_s": later, "compile_error": dyn.compile_error,
            "compile_refused": dyn.compile_refused}


def check_graphs(args) -> dict:
    """``graphs=true`` against eager on the cifar10-5c-cpu-fast step: samples/s of each, and the
    launches per batch the profiler sees (kernels and graph replays on a GPU)."""
    if torch.device(args.device).type != "cuda" and not args.with_compile:
        return {"skipped": "CUDA graphs need a GPU (on a CPU the step is compiled as with "
                           "compile=true, which takes minutes); --with-compile to time it anyway"}
    from torch.profiler import ProfilerActivity, profile

    import stochep.engine.dynamics as dynamics

    dynamics.COMPILE_MIN_GAIN = 0.0  # time it even where it does not pay
    out = {}
    for name, extra in (("eager", []), ("graphs", ["graphs=true"])):
        tr = _cifar_trainer(args.device, args.quick, extra)
        x, y = tr.data.x_train[:tr.cfg.batch_size], tr.data.y_train[:tr.cfg.batch_size]
        first = timed(lambda: tr.train_step(x, y), args.device)  # noqa: B023 -- called here
        step = min(timed(lambda: tr.train_step(x, y), args.device) for _ in range(3))  # noqa: B023
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if tr.device.type == "cuda"
                                         else [])
        with profile(activities=acts) as prof:
            tr.train_step(x, y)
            sync(tr.device)
        launches = {e.key: e.count for e in prof.key_averages()
                    if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaGraphLaunch")}
        out[name] = {"first_step_s": first, "step_s": step,
                     "samples_per_s": len(y) / step, "launches_per_batch": launches,
                     "compile_error": tr.dynamics.compile_error,
                     "compile_refused": tr.dynamics.compile_refused}
    out["speedup"] = out["eager"]["step_s"] / out["graphs"]["step_s"]
    return out


def check_bf16_uniform(args) -> dict:
    from stochep import SpikeRNG

    rng = SpikeRNG(0, args.device)
    out = {}
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        u = rng.uniform(1 << 20, dtype)
        out[name] = {"max": u.max().item(), "share_at_1": (u >= 1).float().mean().item()}
    return out


def check_deterministic(args) -> dict:
    runs, times = [], []
    for _ in range(2):
        t = time.perf_counter()
        tr = _cifar_trainer(args.device, True, ["deterministic=true"])
        tr.fit()
        sync(tr.device)
        times.append(time.perf_counter() - t)
        runs.append([p.detach().cpu().clone() for p in tr.net.parameters()])
    same = all(torch.equal(a, b) for a, b in zip(*runs))
    return {"identical_weights": same, "run_s": times}


CHECKS = {"nccl": check_nccl, "syncs": check_syncs, "profile": check_profile,
          "diagnose": check_diagnose, "compile": check_compile, "graphs": check_graphs,
          "bf16_uniform": check_bf16_uniform, "deterministic": check_deterministic}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="fewer, shorter steps")
    p.add_argument("--with-compile", action="store_true")
    p.add_argument("--checks", nargs="+", default=list(CHECKS), choices=list(CHECKS))
    p.add_argument("--budget", type=float, default=90.0, help="seconds for all checks")
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    clock = Clock(args.budget)
    result = {"checks": {}}
    for name in args.checks:
        if clock.left() < 2:
            result["checks"][name] = {"skipped": "the time budget is spent"}
            continue
        t = time.perf_counter()
        try:
            row = CHECKS[name](args)
        except Exception as e:  # noqa: BLE001 -- one failed check is recorded, the next runs
            row = {"error": f"{type(e).__name__}: {str(e)[:500]}",
                   "traceback": traceback.format_exc()[-1500:]}
        row["seconds"] = time.perf_counter() - t
        result["checks"][name] = row
        print(f"{name}: {'error' if 'error' in row else 'skipped' if 'skipped' in row else 'ok'}"
              f" ({row['seconds']:.1f}s)", flush=True)
        write(args, "first_contact", result)  # as it goes: a timeout keeps what finished
    bad = [n for n, r in result["checks"].items() if "error" in r]
    result["status"] = "ok" if not bad else f"errors in {', '.join(bad)}"
    write(args, "first_contact", result)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
