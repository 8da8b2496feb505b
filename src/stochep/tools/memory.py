"""Peak memory of one training step, EP against BPTT (paper section 4.4, Table 2).

What is measured: the peak of memory held by live tensors during ONE training step , above the baseline of the
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
``python -m stochep.tools.memory`` process, so allocator state and caches do not leak between them.
The reports built from these measurements (Table 2, the T sweep, the plot) are in
``memory_report.py``.
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

from stochep.training.build import build_rule
from stochep.training.config import Config, ConfigError

MB = 2**20


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


def synthetic_step(cfg, batch_size: int, device, seed: int):
    """``(net, x, y, step)``: the network ``cfg`` builds on ``device``, a batch of synthetic
    inputs of its dataset's shape (no data read) and one real training step (the rule's
    gradients, then the optimizer's step) on them."""
    from stochep.data import dataset_shape
    from stochep.engine.rng import Streams
    from stochep.training.models import build_network
    from stochep.training.optim import make_optimizer

    input_shape, n_classes = dataset_shape(cfg.dataset)
    net = build_network(cfg, input_shape, n_classes).to(device)
    gen = torch.Generator().manual_seed(seed)
    x = net.interactions[0].example_input(batch_size, gen).to(device)
    y = torch.randint(0, n_classes, (batch_size,), generator=gen).to(device)
    opt = make_optimizer(cfg, net)
    rule = build_rule(cfg, Streams(cfg.seed, device))

    def step():
        rule.gradients(net, x, y)
        opt.step()

    step.rule = rule  # what it runs (its dynamics say whether compiling worked)
    return net, x, y, step


def measure_step_memory(cfg: Config, algo: str, batch_size: int, device: str = "cpu") -> dict:
    """Peak MB above params + inputs of one training step of ``cfg``'s network (see module doc).

    The step is the trainer's: the rule ``build_rule(cfg)`` builds (all its options) writes the
    gradients, then the run's optimizer steps. Runs in this process; use
    :func:`measure_in_subprocess` for isolated measurements.
    """
    from stochep.rules import RULES

    if algo not in RULES:
        raise ConfigError(f"algo must be one of {', '.join(RULES.names())}, got {algo!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
    cfg = Config.from_dict(cfg.to_dict())
    cfg.set("algo", algo)
    cfg = cfg.validate().resolved()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available")
    net, x, y, train_step = synthetic_step(cfg, batch_size, dev, cfg.seed)

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
    """:func:`measure_step_memory` in a fresh ``python -m stochep.tools.memory`` process."""
    request = json.dumps({"config": cfg.to_dict(), "algo": algo, "batch_size": batch_size,
                          "device": device})
    res = subprocess.run([sys.executable, "-m", "stochep.tools.memory"], input=request, check=False,
                         capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    lines = res.stdout.strip().splitlines()
    if res.returncode == 2 and lines:
        raise ConfigError(json.loads(lines[-1])["error"])
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory measurement ({algo}) failed: {tail}")
    return json.loads(lines[-1])


def _worker() -> int:
    """Entry point of ``python -m stochep.tools.memory``: a JSON request on stdin, a JSON line out."""
    from stochep.data import DataError

    req = json.loads(sys.stdin.read())
    try:
        cfg = Config.from_dict(req["config"])
        out = measure_step_memory(cfg, req["algo"], req["batch_size"], req.get("device", "cpu"))
    except (ValueError, DataError) as e:  # ConfigError included
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
