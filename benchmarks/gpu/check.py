"""The parts of ``benchmarks/gpu/check.sh``: one JSON per part, each time-boxed (docs/gpu.md).

    python benchmarks/gpu/check.py PART --out DIR [--device cuda] [--quick] [--budget S] [...]

PART is one of ``env tests throughput options memory cifar mnist`` (``fail`` records a part that
crashed or ran out of time). Every JSON goes through ``stochep.tools.results.write_json``
(``STOCHEP_RESULTS_DIR=DIR``), so it records the commit, the machine, the GPU and the torch
version; a part writes its JSON after every row, so a part stopped by its time limit keeps what it
measured. ``--quick`` shrinks every workload (T, batch, data) so the whole script runs on a CPU in
a few minutes: it proves the code paths, it measures nothing worth keeping.

Only the standard library is imported at the top: ``env`` and ``fail`` must work even where
stochep (or one of its dependencies) does not import.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PARTS = ("env", "tests", "throughput", "options", "memory", "cifar", "mnist")
# published anchors (samples/s of CIFAR EP training on one GPU)
ANCHORS = {"scellier2023_a100_cifar100": 460.0, "laborieux_zenke_holomorphic_cifar10": 217.0}
TARGET_CIFAR_SAMPLES_S = 500.0
PAPER_EPOCHS = 200


# ---- output --------------------------------------------------------------------------------------
def _json_name(part: str) -> str:
    return f"gpu_{part}.json"


def device_info(device: str) -> dict:
    info = {"device": device}
    try:
        import torch
        info.update(torch=torch.__version__, cuda=torch.version.cuda,
                    cuda_available=torch.cuda.is_available())
        if torch.device(device).type == "cuda" and torch.cuda.is_available():
            dev = torch.device(device)
            props = torch.cuda.get_device_properties(dev)
            info.update(device_name=torch.cuda.get_device_name(dev),
                        device_memory_gib=props.total_memory / 2**30,
                        cudnn=torch.backends.cudnn.version(),
                        bf16_supported=torch.cuda.is_bf16_supported())
        else:
            info["device_name"] = platform.processor() or platform.machine()
    except Exception as e:  # noqa: BLE001 -- a report, whatever failed
        info["error"] = f"{type(e).__name__}: {e}"
    return info


def write(args, part: str, payload: dict) -> None:
    """``OUT/gpu_<part>.json`` via ``write_json`` (provenance); a plain JSON with the machine's
    basics when stochep itself does not import."""
    os.environ["STOCHEP_RESULTS_DIR"] = str(args.out)
    body = {"part": part, "quick": bool(getattr(args, "quick", False)),
            "budget_s": getattr(args, "budget", None), **device_info(args.device), **payload}
    try:
        from stochep.tools.results import write_json
    except Exception as e:  # noqa: BLE001
        Path(args.out).mkdir(parents=True, exist_ok=True)
        body["provenance_error"] = f"stochep.tools.results does not import: {e}"
        body["command"] = " ".join(sys.argv)
        body["python"] = platform.python_version()
        (Path(args.out) / _json_name(part)).write_text(json.dumps(body, indent=2, default=str))
        print(f"wrote {Path(args.out) / _json_name(part)} (without provenance)")
        return
    write_json(_json_name(part), json.loads(json.dumps(body, default=str)))


class Clock:
    """The part's time box: ``left()`` seconds of ``budget`` remain."""

    def __init__(self, budget: float):
        self.t0, self.budget = time.perf_counter(), budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget - self.elapsed()


def sync(device) -> None:
    import torch
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def _overrides(cfg, pairs) -> None:
    if pairs:
        cfg.apply_overrides(list(pairs))


# ---- env ----------------------------------------------------------------------------------------
def part_env(args) -> dict:
    import importlib
    mods = {}
    for m in ("torch", "numpy", "yaml", "tqdm", "sklearn", "PIL", "pytest", "stochep"):
        try:
            mod = importlib.import_module(m)
            mods[m] = getattr(mod, "__version__", "present")
        except Exception as e:  # noqa: BLE001
            mods[m] = f"missing ({type(e).__name__}: {e})"
    try:
        import stochep
        where = str(Path(stochep.__file__).resolve().parent)
    except Exception:  # noqa: BLE001 -- reported in modules above
        where = None
    ok = all(not str(mods[m]).startswith("missing") for m in ("torch", "numpy", "yaml", "tqdm",
                                                            "stochep"))
    return {"status": "ok" if ok else "failed", "modules": mods, "stochep_from": where,
            "python": sys.version, "executable": sys.executable,
            "notes": ["sklearn: the digits test data (tests fall back to an 8x8 MNIST subset)",
                      "PIL + numpy: building the CIFAR-10 batches from the shared JPEGs",
                      "pytest: the core tests (a minimal runner stands in when it is missing)"]}


# ---- tests --------------------------------------------------------------------------------------
def _junit(path: Path) -> list[dict]:
    import xml.etree.ElementTree as ET
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        row = {"test": f"{case.get('classname', '')}::{case.get('name')}",
               "time_s": float(case.get("time") or 0), "outcome": "passed"}
        for child in case:
            if child.tag in ("failure", "error"):
                row["outcome"], row["message"] = child.tag, (child.get("message") or "")[:500]
            elif child.tag == "skipped":
                xfail = (child.get("type") or "") == "pytest.xfail"
                row["outcome"] = "xfailed" if xfail else "skipped"
                row["message"] = (child.get("message") or "")[:500]
        rows.append(row)
    return rows


def part_tests(args) -> dict:
    files = args.tests or ["tests/test_device.py"]
    env = {**os.environ, "STOCHEP_TEST_DEVICE": args.device,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    xml = Path(args.out) / "gpu_tests.junit.xml"
    try:
        import pytest  # noqa: F401
        runner = "pytest"
        # -m "": the device's slow tests too (the CUDA-graph step), not only the quick suite's
        cmd = [sys.executable, "-m", "pytest", *files, "-q", "-rA", "-m", "", "-p",
               "no:cacheprovider", f"--junitxml={xml}"] + (["-k", args.tests_k] if args.tests_k else [])
    except ImportError:
        runner = "minipytest (pytest is not installed)"
        cmd = [sys.executable, str(HERE / "minipytest.py"), f"--junitxml={xml}", *files] + (
            ["-k", args.tests_k] if args.tests_k else [])
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=max(5.0, args.budget), check=False)
        rc, out = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as e:
        rc = "timeout"
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    rows = _junit(xml) if xml.exists() else []
    counts = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    ok = rc == 0 and rows and not counts.get("failure") and not counts.get("error")
    return {"status": "ok" if ok else "failed", "runner": runner, "returncode": rc,
            "command": " ".join(cmd), "STOCHEP_TEST_DEVICE": args.device, "counts": counts,
            "tests": rows, "wall_s": time.perf_counter() - t0, "output_tail": out[-4000:]}


# ---- shared by throughput / options / memory ------------------------------------------------------
def _reduce(cfg, quick: bool) -> None:
    """Quick mode: the preset's network at a few steps (the code path, not the figure)."""
    if quick:
        cfg.set("T_free", 6)  # >= the BPTT sections' loss_last (5)
        cfg.set("T_nudge", 2)
        cfg.set("average_last", 1)
        cfg.set("T_free_warm", 0)


def _setup(preset: str, device: str, batch: int, quick: bool, overrides=()):
    """``(cfg, net, x, y, real_step)``: the preset's network on ``device``, a random batch of
    its input shape, and its real training step (the rule the config builds, then the optimizer)."""
    import torch

    from stochep.data import dataset_shape
    from stochep.tools.memory import synthetic_step
    from stochep.training.presets import load_preset

    cfg = load_preset(preset)
    _reduce(cfg, quick)
    cfg.set("device", device)
    _overrides(cfg, overrides)
    cfg = cfg.validate().resolved()
    net, x, y, real_step = synthetic_step(cfg, batch, torch.device(device), 0)
    return cfg, net, x, y, real_step, len(dataset_shape(cfg.dataset)[0]) == 4


def _best(fn, device, clock: Clock, share: float, max_repeats: int = 3) -> tuple[float, int]:
    """Fastest of up to ``max_repeats`` timed calls (after the caller's warm-up), stopping once
    ``share`` seconds of this row's time are spent (at least one call)."""
    times = []
    t0 = time.perf_counter()
    while len(times) < max_repeats:
        times.append(timed(fn, device))
        if time.perf_counter() - t0 > share or clock.left() < 0:
            break
    return min(times), len(times)


def _presets(args) -> list[str]:
    from stochep.training.presets import preset_names
    return args.presets or list(preset_names())


def _reference_step(cfg, net, x, y):
    """One training step of the autograd reference (``tests/reference.py``) on ``net``: EP with
    the config's beta, T_free, T_nudge and estimator, then the config's optimizer."""
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    from reference import reference_ep_gradients

    from stochep.rules.ep import EP
    from stochep.training.optim import make_optimizer

    opt = make_optimizer(cfg, net)
    gen = torch.Generator(device=x.device).manual_seed(0)
    ep = EP(cfg.beta, cfg.T_free, cfg.T_nudge, cfg.estimator)
    signs = torch.Generator().manual_seed(2)

    def step():
        sign = 1.0
        if ep.estimator == "random-sign":
            sign = 1.0 if torch.randint(0, 2, (1,), generator=signs).item() else -1.0
        reference_ep_gradients(net, x, y, ep, gen, sign=sign)
        opt.step()

    return step


# ---- throughput -----------------------------------------------------------------------------------
def part_throughput(args) -> dict:
    """Samples/s of stochep's real training step against the autograd reference
    (``tests/reference.py``), side by side on the same device, for every preset."""
    import copy

    clock = Clock(args.budget)
    presets = _presets(args)
    rows = []
    result = {"status": "partial", "rows": rows, "unit": "samples/s",
              "note": ("engine: the preset's rule as training builds it (estimator, "
                       "average_last, shared noise, optimizer step); reference: "
                       "tests/reference.py (autograd of the whole energy every step, "
                       "torch.bernoulli spikes) with the same T_free/T_nudge/estimator "
                       "and the same optimizer step. First call of each is a warm-up. "
                       "dvsgesture-3c: one frame of a sequence (frames/s), the "
                       "per-frame cost; a 60-frame sample costs 60 of them."),
              "presets": presets}
    for i, preset in enumerate(presets):
        share = clock.left() / max(1, len(presets) - i)
        if share < 1.0:
            rows.append({"preset": preset, "skipped": "the part's time budget is spent"})
            continue
        row = {"preset": preset}
        rows.append(row)
        try:
            from stochep.training.presets import load_preset
            batch = args.batch or (4 if args.quick else load_preset(preset).batch_size)
            cfg, net, x, y, real_step, frames = _setup(preset, args.device, batch, args.quick)
            row.update(batch=batch, T_free=cfg.T_free, T_nudge=cfg.T_nudge,
                       estimator=cfg.estimator, algo=cfg.algo, frames=frames)
            row["engine_warmup_s"] = timed(real_step, args.device)
            t, n = _best(real_step, args.device, clock, share / 3)
            row.update(engine_s=t, engine_repeats=n, engine_samples_s=batch / t)
            write(args, "throughput", result)
            if cfg.algo != "ep":
                row["reference"] = f"no reference: the preset trains with {cfg.algo}"
                continue
            ref_step = _reference_step(cfg, copy.deepcopy(net), x, y)
            row["reference_warmup_s"] = timed(ref_step, args.device)
            t_ref, n_ref = _best(ref_step, args.device, clock, share / 3)
            row.update(reference_s=t_ref, reference_repeats=n_ref,
                       reference_samples_s=batch / t_ref, speedup=t_ref / row["engine_s"])
        except Exception as e:  # noqa: BLE001 -- one preset's failure is recorded, the next runs
            row["error"] = f"{type(e).__name__}: {e}"
            row["traceback"] = traceback.format_exc()[-1500:]
        write(args, "throughput", result)
    bad = [r for r in rows if "error" in r]
    result["status"] = "failed" if bad and len(bad) == len(rows) else (
        "partial" if bad or any("skipped" in r for r in rows) else "ok")
    result["wall_s"] = clock.elapsed()
    return result


# ---- options --------------------------------------------------------------------------------------
def _option_variants(cfg, net, batch: int) -> list[tuple[str, dict, int, bool]]:
    """``(label, overrides, batch, channels_last)``; eager fp32 first."""
    out = [("eager fp32 (baseline)", {}, batch, True),
           ("bf16 dynamics", {"dynamics_dtype": "bfloat16"}, batch, True),
           ("update=async (same T)", {"update": "async"}, batch, True),
           ("update=async, T_free/2", {"update": "async",
                                      "T_free": max(5, cfg.T_free // 2)}, batch, True),
           (f"large batch ({4 * batch})", {}, 4 * batch, True),
           ("compile=true", {"compile": True}, batch, True),
           ("bf16 + compile", {"dynamics_dtype": "bfloat16", "compile": True}, batch, True)]
    if any(type(i).__name__.lower().startswith("conv") for i in net.interactions):
        out.insert(1, ("conv inputs NCHW (channels-last off)", {}, batch, False))
    return out


def part_options(args) -> dict:
    """The speed options against eager fp32 on the same device: bf16 dynamics, update=async,
    large batch, torch.compile, channels-last (the conv engine's layout) switched off."""
    from stochep.engine.interactions import conv

    clock = Clock(args.budget)
    presets = args.presets or (["mnist-2fc"] if args.quick else ["cifar10-5c", "mnist-2fc"])
    rows = []
    result = {"status": "partial", "rows": rows, "unit": "samples/s",
              "note": ("the real training step (rule + optimizer) per option; "
                       "speedup against the eager fp32 row of the same preset; "
                       "compile rows: first_call_s includes compilation. Timing only: "
                       "an option that pays must still be checked for accuracy.")}
    from stochep.training.presets import load_preset
    jobs, base = [], {}
    for preset in presets:
        batch = args.batch or (4 if args.quick else load_preset(preset).batch_size)
        try:
            cfg0, net0, *_ = _setup(preset, args.device, batch, args.quick)
            jobs += [(preset, *v) for v in _option_variants(cfg0, net0, batch)]
            del net0, _
        except Exception as e:  # noqa: BLE001
            rows.append({"preset": preset, "error": f"{type(e).__name__}: {e}"})
    # every preset's eager rows first, the compile rows (compilation may be slow) last
    jobs.sort(key=lambda j: bool(j[2].get("compile")))
    for k, (preset, label, over, b, channels_last) in enumerate(jobs):
        share = clock.left() / max(1, len(jobs) - k)
        row = {"preset": preset, "option": label, "batch": b, "overrides": over}
        rows.append(row)
        if over.get("compile") and args.quick and not args.with_compile:
            row["skipped"] = "quick mode: torch.compile takes minutes on a CPU (--with-compile)"
            continue
        if clock.left() < 3:
            row["skipped"] = "the part's time budget is spent"
            continue
        saved = conv._channels_last
        try:
            if not channels_last:
                conv._channels_last = lambda x: x.contiguous()
            over_pairs = [f"{key}={json.dumps(v)}" for key, v in over.items()]
            cfg, _net, _x, _y, step, _ = _setup(preset, args.device, b, args.quick, over_pairs)
            row.update(T_free=cfg.T_free, T_nudge=cfg.T_nudge)
            row["first_call_s"] = timed(step, args.device)
            t, n = _best(step, args.device, clock, share / 2)
            row.update(step_s=t, repeats=n, samples_s=b / t)
            dyn = getattr(getattr(step, "rule", None), "dynamics", None)
            if over.get("compile"):  # a failed or refused compile ran eagerly: say so
                row["compile_error"] = getattr(dyn, "compile_error", None)
                row["compile_refused"] = getattr(dyn, "compile_refused", None)
            if label.startswith("eager fp32"):
                base[preset] = row["samples_s"]
            if preset in base:
                row["speedup_vs_eager_fp32"] = row["samples_s"] / base[preset]
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {str(e)[:500]}"
        finally:
            conv._channels_last = saved
        write(args, "options", result)
    bad = [r for r in rows if "error" in r]
    cut = [r for r in rows if "budget" in r.get("skipped", "")]
    result["status"] = "partial" if bad or cut else "ok"
    result["wall_s"] = clock.elapsed()
    return result


# ---- memory (Table 2) -------------------------------------------------------------------------------
def part_memory(args) -> dict:
    """Peak memory of one EP and one BPTT training step per preset (``stochep.tools.memory``:
    ``torch.cuda.max_memory_allocated`` on CUDA, live tensor storages on the CPU), each in a fresh
    process, against the paper's Table 2."""
    from stochep.tools import memory
    from stochep.tools.memory_report import paper_row, table_batch_size
    from stochep.training.presets import load_preset

    clock = Clock(args.budget)
    presets = _presets(args)
    rows = []
    result = {"status": "partial", "rows": rows,
              "method": "cuda max_memory_allocated above params + inputs, one steady "
                        "step after a warm-up" if args.device.startswith("cuda") else
                        "live tensor storages (TorchDispatchMode)",
              "paper": "Table 2: total GPU MB on an RTX A5000 (batch 128, 64 for IMDB)"}
    for i, preset in enumerate(presets):
        row = {"preset": preset}
        rows.append(row)
        share = clock.left() / max(1, len(presets) - i)
        if share < 2:
            row["skipped"] = "the part's time budget is spent"
            continue
        try:
            cfg = load_preset(preset)
            _reduce(cfg, args.quick)
            cfg.validate()
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            continue
        batch = args.batch or (2 if args.quick else table_batch_size(cfg.dataset))
        row.update(batch=batch, T_free=cfg.T_free, T_nudge=cfg.T_nudge)
        for algo in ("ep", "bptt"):
            try:
                r = memory.measure_in_subprocess(cfg, algo, batch, args.device,
                                                 timeout=max(2.0, min(clock.left(), share)))
                row[f"{algo}_mb"] = r["peak_mb"]
                row[f"{algo}_T_free"] = r["T_free"]
                row["params_mb"] = r["params_mb"]
            except Exception as e:  # noqa: BLE001
                row[f"{algo}_error"] = f"{type(e).__name__}: {str(e)[:400]}"
        if row.get("ep_mb") and row.get("bptt_mb") is not None:
            row["ratio"] = row["bptt_mb"] / row["ep_mb"]
        p = paper_row(preset)
        if p:
            row["paper"] = {"dataset": p[0], "ep_mb": p[1], "bptt_mb": p[2], "ratio": p[3]}
        write(args, "memory", result)
    bad = [r for r in rows if any(k.endswith("error") for k in r)]
    result["status"] = "partial" if bad or any("skipped" in r for r in rows) else "ok"
    result["wall_s"] = clock.elapsed()
    return result


# ---- data ---------------------------------------------------------------------------------------
def _cifar_dir(args) -> tuple[str | None, str | None]:
    """A folder with ``cifar-10-batches-py`` (built from the shared JPEGs if needed), or
    ``(None, reason)``."""
    from stochep.tools.results import data_dir
    for cand in (os.environ.get("STOCHEP_CIFAR10_DIR"), args.cifar_dir, data_dir("cifar10")):
        if cand and (Path(cand) / "cifar-10-batches-py" / "batches.meta").exists():
            return cand, None
    build = Path(args.cifar_dir or os.environ.get("STOCHEP_CIFAR10_BUILD", "/tmp/stochep-cifar10"))
    if (build / "cifar-10-batches-py" / "batches.meta").exists():
        return str(build), None
    script = Path(data_dir("cifar10")) / "build_batches.py"
    if not script.exists():
        return None, f"no CIFAR-10 batches and no {script} to build them from"
    try:
        import numpy  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as e:
        return None, f"building the CIFAR-10 batches needs numpy and pillow: {e}"
    res = subprocess.run([sys.executable, str(script), str(build)], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        return None, f"build_batches.py failed: {(res.stderr or res.stdout)[-500:]}"
    return str(build), None


def _synthetic(shape, n_train: int, n_test: int, n_classes: int = 10):
    """Random images with a learnable class signal (for the code-path test of ``--synthetic``)."""
    import torch

    from stochep.data import Dataset
    g = torch.Generator().manual_seed(0)
    y_tr, y_te = (torch.randint(0, n_classes, (n,), generator=g) for n in (n_train, n_test))
    protos = torch.rand(n_classes, *shape, generator=g)
    x_tr = (0.7 * protos[y_tr] + 0.3 * torch.rand(n_train, *shape, generator=g)).clamp(0, 1)
    x_te = (0.7 * protos[y_te] + 0.3 * torch.rand(n_test, *shape, generator=g)).clamp(0, 1)
    return Dataset.from_tensors(x_tr, y_tr, x_te, y_te, "synthetic")


# ---- cifar ----------------------------------------------------------------------------------------
def part_cifar(args) -> dict:
    """Time-boxed training of the full-width cifar10-5c: test accuracy at fractions of an epoch,
    steady samples/s, and the projected time of the paper's 200-epoch run."""
    import torch

    from stochep.training.presets import load_preset
    from stochep.training.trainer import Trainer

    clock = Clock(args.budget)
    cfg = load_preset("cifar10-5c")
    cfg.set("device", args.device)
    cfg.set("val_fraction", 0.0)  # training on all 50,000 images, as the paper's epoch
    quick = {"T_free": 6, "T_nudge": 2, "average_last": 1, "batch_size": 4,
             "calibrate_batch": 8, "calibrate_iters": 2} if args.quick else {}
    for k, v in quick.items():
        cfg.set(k, v)
    _overrides(cfg, args.set)
    if args.synthetic:
        data, where = _synthetic((3, 32, 32), 64, 32), "synthetic (code-path test)"
    else:
        folder, why = _cifar_dir(args)
        if folder is None:
            return {"status": "skipped", "reason": why}
        cfg.data_dir = folder
        data, where = cfg.load_data(), folder
    t_data = clock.elapsed()
    tr = Trainer(cfg.validate(), data, progress=False)
    t_setup = clock.elapsed()
    dev, n = tr.device, len(tr.data.y_train)
    n_eval = args.eval_samples or (16 if args.quick else 2000)
    # a seeded random subset: the test batch built from the JPEGs is ordered by class
    pick = torch.randperm(len(tr.data.y_test), generator=torch.Generator().manual_seed(0))[:n_eval]
    x_eval, y_eval = tr.data.x_test[pick], tr.data.y_test[pick]
    train_budget = clock.left() - (5 if args.quick else 20)  # the last evaluation and the JSON
    evals = args.evals or 4
    max_batches = args.max_batches or (6 if args.quick else 0)  # 0: the time box alone
    curve = []
    result = {"status": "partial", "preset": "cifar10-5c", "data": where,
              "batch_size": cfg.batch_size, "T_free": cfg.T_free,
              "T_nudge": cfg.T_nudge, "estimator": cfg.estimator,
              "layers": cfg.layers, "overrides": list(args.set or []),
              "train_samples_per_epoch": n, "eval_samples": n_eval,
              "data_load_s": t_data, "setup_s": t_setup - t_data,
              "train_budget_s": train_budget, "curve": curve}
    order = torch.randperm(n, generator=tr.streams.data)
    B = cfg.batch_size
    seen = correct = batches = 0
    train_s = warm_s = 0.0
    warm_batches = 2
    next_eval = train_budget / evals
    while train_s < train_budget and not (max_batches and batches >= max_batches):
        b = batches % max(1, n // B)
        if b == 0 and batches:
            order = torch.randperm(n, generator=tr.streams.data)
        idx = order[b * B:(b + 1) * B]
        sync(dev)
        t0 = time.perf_counter()
        m = tr.train_step(tr.data.x_train[idx], tr.data.y_train[idx], index=idx, batch=b)
        correct += m["correct"]  # .item() inside: syncs
        dt = time.perf_counter() - t0
        train_s += dt
        batches += 1
        seen += m["n"]
        if batches <= warm_batches:
            warm_s += dt
        last = train_s >= train_budget or (max_batches and batches >= max_batches)
        due = (batches % math.ceil(max_batches / evals) == 0) if max_batches \
            else train_s >= next_eval
        if due or last:
            t_eval = time.perf_counter()
            acc = tr.evaluate(x_eval, y_eval)
            curve.append({"epoch_fraction": seen / n, "samples": seen, "batches": batches,
                          "train_s": train_s, "test_acc": acc, "train_acc": correct / seen,
                          "eval_s": time.perf_counter() - t_eval})
            next_eval += train_budget / evals
            write(args, "cifar", result)
    steady_n = (batches - warm_batches) * B
    steady = steady_n / (train_s - warm_s) if batches > warm_batches else seen / train_s
    eval_rate = (n_eval * len(curve) / max(sum(c["eval_s"] for c in curve), 1e-9)) \
        if curve else None
    epoch_s = n / steady
    eval_epoch_s = 10_000 / eval_rate if eval_rate else 0.0
    result.update(
        status="ok", batches=batches, samples=seen, train_s=train_s,
        first_batches_s=warm_s, samples_s=seen / train_s, steady_samples_s=steady,
        eval_samples_s=eval_rate, projected_epoch_s=epoch_s,
        projected_paper_run_h=PAPER_EPOCHS * (epoch_s + eval_epoch_s) / 3600,
        projected_paper_run_train_only_h=PAPER_EPOCHS * epoch_s / 3600,
        target={"samples_s": TARGET_CIFAR_SAMPLES_S, "paper_run_h": 6.0,
                "met": steady >= TARGET_CIFAR_SAMPLES_S},
        anchors_samples_s=ANCHORS,
        note=("one pass of the trainer's own step (rule, optimizer, augmentation, spike stream) "
              "over a shuffled epoch, stopped by the time box; test accuracy on "
              f"{n_eval} test images (a seeded random subset); steady samples/s leaves out the first {warm_batches} "
              "batches; the projection adds one evaluation of the 10,000 test images per epoch"),
        wall_s=clock.elapsed())
    return result


# ---- mnist ----------------------------------------------------------------------------------------
def _cpu_figure() -> dict | None:
    path = ROOT / "benchmarks" / "results" / "train_mnist-2fc.json"
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    secs = d.get("epoch_seconds") or []
    tests = d.get("test_acc_per_epoch") or []
    return {"file": str(path.relative_to(ROOT)), "command": d.get("command"),
            "machine": d.get("machine"), "epochs": len(secs),
            "test_acc_per_epoch": tests, "epoch_s_mean": sum(secs) / len(secs) if secs else None}


def part_mnist(args) -> dict:
    """``mnist-2fc`` for a fixed number of epochs (the preset's recipe), stopped early only by the
    time box: accuracy per epoch and wall time, against the CPU run in benchmarks/results."""
    from stochep.tools.results import data_dir
    from stochep.training.presets import load_preset
    from stochep.training.trainer import Trainer

    clock = Clock(args.budget)
    epochs = args.epochs or (1 if args.quick else 10)
    cfg = load_preset("mnist-2fc")
    cfg.set("device", args.device)
    cfg.set("epochs", epochs)
    if args.quick:
        for k, v in {"train_subset": 512, "T_free": 6, "T_nudge": 3, "average_last": 1,
                     "calibrate_batch": 32, "calibrate_iters": 2}.items():
            cfg.set(k, v)
    _overrides(cfg, args.set)
    if args.synthetic:
        data, where = _synthetic((784,), 256, 128), "synthetic (code-path test)"
    else:
        cfg.data_dir = data_dir("mnist")
        data, where = cfg.load_data(), cfg.data_dir
    if args.quick:  # a small test set too: the quick run proves the path
        data.x_test, data.y_test = data.x_test[:500], data.y_test[:500]
    t_data = clock.elapsed()
    tr = Trainer(cfg.validate(), data, progress=False)
    result = {"status": "partial", "preset": "mnist-2fc", "data": where, "epochs_planned": epochs,
              "batch_size": cfg.batch_size, "T_free": cfg.T_free, "T_nudge": cfg.T_nudge,
              "overrides": list(args.set or []), "data_load_s": t_data,
              "setup_s": clock.elapsed() - t_data, "history": tr.history,
              "cpu_figure": _cpu_figure(), "target_test_acc": 0.975}
    while tr.epoch < epochs:
        last = tr.history[-1]["time_s"] * 1.3 + 5 if tr.history else 0.0
        if tr.history and clock.left() < last:
            result["stopped_by_budget"] = True
            break
        tr.fit(stop_after=tr.epoch + 1)
        write(args, "mnist", result)
    secs = [h["time_s"] for h in tr.history]
    result.update(status="ok" if tr.epoch == epochs else "partial", epochs_done=tr.epoch,
                  summary=tr.summary(), train_s=sum(secs),
                  epoch_s_mean=sum(secs) / len(secs) if secs else None,
                  projected_s_for_planned_epochs=(sum(secs) / len(secs) * epochs) if secs
                  else None, wall_s=clock.elapsed(),
                  test_acc=tr.history[-1]["test_acc"] if tr.history else None)
    return result


# ---- fail -------------------------------------------------------------------------------------------
def part_fail(args) -> dict:
    """Mark a part that exited non-zero (or was killed at its time limit) as failed, keeping
    whatever rows it had written."""
    path = Path(args.out) / _json_name(args.failed_part)
    try:
        prior = json.loads(path.read_text())
    except (OSError, ValueError):
        prior = {}
    for k in ("commit", "date", "command", "machine", "load_average_1min", "part", "quick",
              "budget_s", "device", "torch", "cuda", "cuda_available", "device_name"):
        prior.pop(k, None)
    tail = ""
    if args.log and Path(args.log).exists():
        tail = Path(args.log).read_text(errors="replace")[-4000:]
    timed_out = args.rc in (124, 137)
    return {**prior, "status": "timeout" if timed_out else "failed", "returncode": args.rc,
            "log_tail": tail, "budget_s": args.budget}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=PARTS + ("fail",))
    p.add_argument("failed_part", nargs="?", help="fail: the part to mark")
    p.add_argument("--out", required=True, help="folder of the JSON files")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny workloads (a CPU code-path check)")
    p.add_argument("--budget", type=float, default=60.0, help="seconds this part may take")
    p.add_argument("--presets", nargs="+", help="throughput/options/memory: these presets")
    p.add_argument("--batch", type=int, help="throughput/options/memory: this batch size")
    p.add_argument("--tests", nargs="+", help="tests: these test files (default "
                   "tests/test_device.py)")
    p.add_argument("--tests-k", help="tests: pytest -k expression")
    p.add_argument("--with-compile", action="store_true",
                   help="options: time torch.compile in quick mode too (slow on a CPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="cifar/mnist: a config override (repeatable)")
    p.add_argument("--epochs", type=int, help="mnist: epochs (default 10; quick 1)")
    p.add_argument("--evals", type=int, help="cifar: evaluations over the time box (default 4)")
    p.add_argument("--eval-samples", type=int, help="cifar: test images per evaluation")
    p.add_argument("--max-batches", type=int,
                   help="cifar: stop after this many batches (default: the time box; quick 6)")
    p.add_argument("--cifar-dir", help="cifar: folder with (or to build) cifar-10-batches-py")
    p.add_argument("--synthetic", action="store_true",
                   help="cifar/mnist: random data of the right shape (a code-path test)")
    p.add_argument("--rc", type=int, default=1, help="fail: the part's exit status")
    p.add_argument("--log", help="fail: the part's log file")
    args = p.parse_args(argv)
    args.out = str(Path(args.out).resolve())
    if args.part == "fail":
        if not args.failed_part:
            p.error("fail needs the name of the part")
        write(args, args.failed_part, part_fail(args))
        return 0
    fn = globals()[f"part_{args.part}"]
    t0 = time.perf_counter()
    try:
        payload = fn(args)
    except Exception as e:  # noqa: BLE001 -- recorded, then the exit status says it failed
        payload = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc()[-3000:]}
    payload.setdefault("wall_s", time.perf_counter() - t0)
    write(args, args.part, payload)
    print(f"{args.part}: {payload.get('status')}")
    return 0 if payload.get("status") in ("ok", "partial", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
