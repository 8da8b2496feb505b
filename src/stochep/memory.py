"""Peak memory of one training step, EP against BPTT (paper section 4.4, Table 2).

What is measured: the peak of memory held by live tensors during ONE training step (EP: the free
and nudged phases of :func:`stochep.ep.ep_gradients`; BPTT: :func:`stochep.bptt.bptt_gradients`
over ``T = T_free`` steps; each followed by the optimizer step), above the baseline of the
parameters and the input batch that exist before the step. One warm-up step runs first, so the
optimizer's state (AdamW moments, allocated once at its first step) already exists and the figure
is a steady-state step: the gradients, the step's temporaries and the spike random stream. Each
rule uses the optimizer and the EP options it trains with (``Config.resolved()``). Inputs
are random tensors of the dataset's shape (no data files needed). MB means MiB (2**20 bytes), as
``torch.cuda.max_memory_allocated() / 2**20`` is usually reported.

How it is measured:

- CUDA: ``torch.cuda.reset_peak_memory_stats`` then ``max_memory_allocated`` minus the
  allocation before the step (what the caching allocator handed out to tensors).
- CPU: :class:`StorageTracker`, a ``TorchDispatchMode`` that sees every aten op, forward and
  backward. Each output tensor whose storage is new (the op's schema declares no alias for the
  return, and the storage is not one of the op's inputs nor already tracked) adds the storage's
  ``nbytes`` to a running total; a ``weakref.finalize`` on the storage object (PyTorch keeps a
  storage's Python object alive exactly as long as the storage) subtracts it when the storage is
  freed, whether its last reference was Python's or autograd's saved tensors. The running maximum
  is the peak. This counts tensor bytes exactly and is blind to allocator caching, RSS and
  library workspaces (e.g. BLAS buffers), which are not tensors; ``tests/test_memory.py`` checks
  it against hand-counted allocations. The process RSS is not used: the CPU allocator returns
  memory to the OS lazily and RSS includes the interpreter and libraries.

Each measurement in :func:`measure_in_subprocess` (and every CLI measurement) runs in a fresh
``python -m stochep.memory`` process, so allocator state and caches do not leak between them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import weakref

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from .config import Config, ConfigError

MB = 2**20

# Paper Table 2 (GPU MB, NVIDIA RTX A5000; batch 128, 64 for IMDB):
# model -> (dataset, EP, BPTT, the BPTT/EP ratio as printed)
PAPER_TABLE2 = {"1FC": ("MNIST", 141, 179, 1.2), "2FC": ("MNIST", 147, 195, 1.3),
                "2C": ("MNIST", 281, 677, 2.4), "5C": ("CIFAR-10", 7885, 42938, 5.4),
                "3C": ("DVS Gesture", 4617, 10381, 2.2), "1HA1FC": ("IMDB", 12267, 18189, 1.5)}

# Input shape and number of classes of each dataset, so no data has to be read. A flat 784 is
# read as (1, 28, 28) by conv layers (stochep.models.image_shape).
DATASET_SHAPES = {"digits": ((64,), 10), "mnist": ((784,), 10), "fashion-mnist": ((784,), 10),
                  "cifar10": ((3, 32, 32), 10)}


def paper_row(preset: str):
    """Paper Table 2 entry ``(dataset, EP MB, BPTT MB, ratio)`` for a preset named ``<data>-<model>``."""
    return PAPER_TABLE2.get(preset.rsplit("-", 1)[-1].upper()) if preset else None


def table_batch_size(dataset: str) -> int:
    """Table 2 batch size: 64 for IMDB, 128 otherwise."""
    return 64 if dataset == "imdb" else 128


def dataset_shape(dataset: str) -> tuple[tuple[int, ...], int]:
    if dataset not in DATASET_SHAPES:
        raise ConfigError(f"memory: no known input shape for dataset {dataset!r} "
                          f"(known: {', '.join(sorted(DATASET_SHAPES))})")
    return DATASET_SHAPES[dataset]


# ---- CPU tracker ------------------------------------------------------------------------------
class StorageTracker(TorchDispatchMode):
    """Running and peak bytes of tensor storages allocated while the mode is active.

    ``current`` and ``peak`` are in bytes; storages that existed before the mode was entered are
    not counted, even when an in-place op returns them.
    """

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self.n_allocs = 0
        self._live: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def _track(self, t: torch.Tensor, inputs: set[int]) -> None:
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse and other storage-less tensors
            return
        key, n = st._cdata, st.nbytes()
        if n == 0 or key in inputs or key in self._live:
            return
        self._live[key] = n
        self.current += n
        self.n_allocs += 1
        self.peak = max(self.peak, self.current)
        weakref.finalize(st, self._free, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if all(r.alias_info is not None for r in func._schema.returns):
            return out  # views, in-place and out= ops allocate nothing
        inputs = set()
        for a in pytree.tree_leaves((args, kwargs)):
            if isinstance(a, torch.Tensor):
                try:
                    inputs.add(a.untyped_storage()._cdata)
                except (RuntimeError, NotImplementedError):
                    pass
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t, inputs)
        return out


# ---- one measurement --------------------------------------------------------------------------
def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_step_memory(cfg: Config, algo: str, batch_size: int, device: str = "cpu") -> dict:
    """Peak MB above params + inputs of one training step of ``cfg``'s network (see module doc).

    Runs in this process; use :func:`measure_in_subprocess` for isolated measurements.
    """
    from .bptt import bptt_gradients
    from .ep import EPConfig, ep_gradients
    from .models import build_network
    from .rng import SpikeRNG
    from .train import make_optimizer

    if algo not in ("ep", "bptt"):
        raise ConfigError(f"algo must be ep or bptt, got {algo!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
    cfg = Config.from_dict(cfg.to_dict())
    cfg.set("algo", algo)
    cfg = cfg.validate().resolved()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available")
    input_shape, n_classes = dataset_shape(cfg.dataset)
    net = build_network(cfg, input_shape, n_classes).to(dev)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.rand(batch_size, *net.input_shape, generator=gen).to(dev)
    y = torch.randint(0, n_classes, (batch_size,), generator=gen).to(dev)
    opt = make_optimizer(cfg, net)
    rng = SpikeRNG(cfg.seed, device=dev)
    sign_gen = torch.Generator().manual_seed(cfg.seed + 2)
    ep_cfg = EPConfig(cfg.beta, cfg.T_free, cfg.T_nudge, cfg.estimator, cfg.average_last,
                      cfg.shared_noise)

    def train_step():
        if algo == "bptt":
            bptt_gradients(net, x, y, cfg.T_free, rng)
        else:
            ep_gradients(net, x, y, ep_cfg, rng, sign_gen)
        opt.step()

    params = _nbytes(net.parameters())
    train_step()  # warm-up: the optimizer allocates its state (AdamW moments) on its first step
    t0 = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        train_step()
        torch.cuda.synchronize(dev)
        peak, method = torch.cuda.max_memory_allocated(dev) - base, "cuda max_memory_allocated"
    else:
        with StorageTracker() as tracker:
            train_step()
        peak, method = tracker.peak, "live tensor storages (TorchDispatchMode)"
    return {"preset": cfg.preset, "dataset": cfg.dataset, "algo": algo, "batch_size": batch_size,
            "T_free": cfg.T_free, "T_nudge": cfg.T_nudge if algo == "ep" else None,
            "estimator": cfg.estimator if algo == "ep" else None, "optimizer": cfg.optimizer,
            "layers": cfg.layers, "n_perclass": cfg.n_perclass, "device": str(dev),
            "method": method, "peak_bytes": int(peak), "peak_mb": peak / MB,
            "params_mb": params / MB, "baseline_mb": (params + _nbytes([x, y])) / MB,
            "time_s": time.perf_counter() - t0}


def measure_in_subprocess(cfg: Config, algo: str, batch_size: int, device: str = "cpu",
                          timeout: float | None = None) -> dict:
    """:func:`measure_step_memory` in a fresh ``python -m stochep.memory`` process."""
    request = json.dumps({"config": cfg.to_dict(), "algo": algo, "batch_size": batch_size,
                          "device": device})
    res = subprocess.run([sys.executable, "-m", "stochep.memory"], input=request, check=False,
                         capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    lines = res.stdout.strip().splitlines()
    if res.returncode == 2 and lines:
        raise ConfigError(json.loads(lines[-1])["error"])
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory measurement ({algo}) failed: {tail}")
    return json.loads(lines[-1])


def _worker() -> int:
    """Entry point of ``python -m stochep.memory``: a JSON request on stdin, a JSON line out."""
    req = json.loads(sys.stdin.read())
    try:
        cfg = Config.from_dict(req["config"])
        out = measure_step_memory(cfg, req["algo"], req["batch_size"], req.get("device", "cpu"))
    except ValueError as e:  # ConfigError included
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(out))
    return 0


# ---- CLI modes --------------------------------------------------------------------------------
def _ratio(ep, bptt):
    return bptt / ep if ep and bptt is not None else None


def _fmt(v, spec=".2f", suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


def compare(cfg: Config, batch_size: int, device: str = "cpu", algos=("ep", "bptt")) -> dict:
    """EP and BPTT peaks (each in its own process) and the BPTT/EP ratio."""
    row = {a: measure_in_subprocess(cfg, a, batch_size, device) for a in algos}
    ep, bp = (row.get(a, {}).get("peak_mb") for a in ("ep", "bptt"))
    return {"preset": cfg.preset, "dataset": cfg.dataset, "batch_size": batch_size,
            "T_free": cfg.T_free, "ep_mb": ep, "bptt_mb": bp, "ratio": _ratio(ep, bp),
            "runs": row}


def table(device: str = "cpu", T_free: int | None = None, overrides=(), presets=None,
          batch_size: int | None = None) -> dict:
    """Table 2 over every preset (batch 128; 64 for IMDB), with the paper's GPU numbers."""
    from .presets import load_preset, preset_names

    rows = []
    for name in presets or preset_names():
        cfg = load_preset(name)[0]
        if T_free is not None:
            cfg.set("T_free", T_free)
        cfg = cfg.apply_overrides(list(overrides)).validate()
        paper = paper_row(name)
        try:
            row = compare(cfg, batch_size or table_batch_size(cfg.dataset), device)
        except (ConfigError, RuntimeError) as e:
            row = {"preset": name, "dataset": cfg.dataset, "error": str(e)}
        row["paper"] = None if paper is None else {
            "model": name.rsplit("-", 1)[-1].upper(), "dataset": paper[0], "ep_mb": paper[1],
            "bptt_mb": paper[2], "ratio": paper[3]}
        rows.append(row)
    return {"mode": "table", "device": device, "rows": rows}


def format_table(result: dict) -> str:
    head = ("preset", "batch", "T_free", "EP MB", "BPTT MB", "BPTT/EP",
            "paper EP", "paper BPTT", "paper BPTT/EP")
    lines = [head]
    for r in result["rows"]:
        p = r.get("paper") or {}
        paper = (_fmt(p.get("ep_mb"), "d"), _fmt(p.get("bptt_mb"), "d"),
                 _fmt(p.get("ratio"), ".1f", "x"))
        if "error" in r:
            lines.append((r["preset"], "-", "-", "n/a", "n/a", "n/a") + paper)
            continue
        lines.append((r["preset"], str(r["batch_size"]), str(r["T_free"]), _fmt(r["ep_mb"]),
                      _fmt(r["bptt_mb"]), _fmt(r["ratio"], ".1f", "x")) + paper)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                     enumerate(zip(row, widths))) for row in lines]
    out.append(f"ours: peak MB above params + inputs of one training step on {result['device']} "
               "(live tensors); paper: Table 2, total GPU MB on an RTX A5000 (the paper's "
               "numbers, for reference)")
    out += [f"{r['preset']}: {r['error']}" for r in result["rows"] if "error" in r]
    return "\n".join(out)


def format_compare(result: dict) -> str:
    lines = []
    for algo, r in result["runs"].items():
        lines.append(f"{result['preset'] or result['dataset']} {algo}: {r['peak_mb']:.2f} MB "
                     f"(batch {r['batch_size']}, T_free {r['T_free']}, {r['device']}; peak above "
                     f"params + inputs of {r['baseline_mb']:.2f} MB)")
    if result["ratio"] is not None:
        lines.append(f"BPTT/EP: {result['ratio']:.1f}x")
    return "\n".join(lines)


def sweep(cfg: Config, Ts, batch_size: int, device: str = "cpu") -> dict:
    """EP and BPTT peak memory as ``T_free`` grows (``T_nudge`` fixed)."""
    rows = []
    for T in Ts:
        c = Config.from_dict(cfg.to_dict())
        c.set("T_free", int(T))
        r = compare(c.validate(), batch_size, device)
        rows.append({"T_free": int(T), "ep_mb": r["ep_mb"], "bptt_mb": r["bptt_mb"],
                     "ratio": r["ratio"]})
    return {"mode": "sweep", "preset": cfg.preset, "dataset": cfg.dataset,
            "batch_size": batch_size, "device": device, "rows": rows}


def format_sweep(result: dict) -> str:
    lines = [(f"{result['preset'] or result['dataset']}, batch {result['batch_size']}, "
              f"{result['device']}: peak MB above params + inputs of one training step"),
             f"{'T_free':>7}{'EP MB':>10}{'BPTT MB':>10}{'BPTT/EP':>9}"]
    for r in result["rows"]:
        lines.append(f"{r['T_free']:>7}{_fmt(r['ep_mb']):>10}{_fmt(r['bptt_mb']):>10}"
                     f"{_fmt(r['ratio'], '.1f', 'x'):>9}")
    return "\n".join(lines)


def plot_sweep(result: dict, path: str) -> bool:
    """Save the sweep as a PNG; ``False`` when matplotlib (``stochep[plot]``) is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ts = [r["T_free"] for r in result["rows"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(Ts, [r["ep_mb"] for r in result["rows"]], "o-", label="EP")
    ax.plot(Ts, [r["bptt_mb"] for r in result["rows"]], "s-", label="BPTT")
    ax.set_xlabel("T_free (steps)")
    ax.set_ylabel("peak memory of a training step (MB)")
    ax.set_title(f"{result['preset'] or result['dataset']}, batch {result['batch_size']}, "
                 f"{result['device']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run_command(preset, algo=None, batch_size=None, T_free=None, table_mode=False, sweep_T=None,
                plot="memory_sweep.png", device="cpu", overrides=()) -> tuple[dict, str]:
    """``stochep memory``: one preset, ``--table`` or ``--sweep-T``; returns (result, text)."""
    from .presets import load_preset

    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if table_mode:
        if preset:
            raise ConfigError("--table measures every preset; drop --preset")
        res = table(device, T_free, overrides, batch_size=batch_size)
        return res, format_table(res)
    if not preset:
        raise ConfigError("--preset is required (or --table for every preset)")
    cfg = load_preset(preset)[0]
    if T_free is not None:
        cfg.set("T_free", T_free)
    cfg = cfg.apply_overrides(list(overrides)).validate()
    batch = batch_size or 128
    if not sweep_T:
        res = compare(cfg, batch, device, (algo,) if algo else ("ep", "bptt"))
        return res, format_compare(res)
    res = sweep(cfg, sweep_T, batch, device)
    text = format_sweep(res)
    if plot_sweep(res, plot):
        res["plot"] = os.path.abspath(plot)
        text += f"\nplot: {plot}"
    else:
        text += "\nno plot: the plot needs `pip install stochep[plot]` (matplotlib)"
    return res, text


if __name__ == "__main__":
    sys.exit(_worker())
