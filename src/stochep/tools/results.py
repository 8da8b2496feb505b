"""Result files with provenance, and the helpers the benchmark scripts share.

Every result JSON records what produced it (:func:`provenance`): the git commit (``-dirty``
when tracked files differ from it), the UTC date, the command line, the machine (CPU, cores,
threads, GPU), the torch and Python versions and the load average before the run, so a reader
can tell a quiet machine from a busy one. Scripts run from the repository root; results go to
``benchmarks/results`` (or ``$STOCHEP_RESULTS_DIR``).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def results_dir() -> Path:
    return Path(os.environ.get("STOCHEP_RESULTS_DIR", "benchmarks/results"))


def data_dir(name: str) -> str:
    """``$STOCHEP_<NAME>_DIR``, else ``shared/data/<name>`` beside the working directory or an
    ancestor of it (the layout of ``../shared/data``)."""
    env = os.environ.get(f"STOCHEP_{name.upper().replace('-', '_')}_DIR")
    if env:
        return env
    for folder in (Path.cwd(), *Path.cwd().parents):
        candidate = folder / "shared" / "data" / name
        if candidate.is_dir():
            return str(candidate)
    return str(Path("..") / "shared" / "data" / name)


def git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` if tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def machine() -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "host": platform.node()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def provenance() -> dict:
    """Commit, date, command, machine and load of the run that writes a result."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
            "machine": machine(),
            "load_average_1min": {"at_start": _LOAD_AT_START, "at_end": load}}


def write_json(name: str, payload: dict) -> Path:
    """``results_dir()/name``: ``payload`` under its provenance, written atomically."""
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({**provenance(), **payload}, indent=2))
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def best_time(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` calls (seconds); the minimum is least disturbed by noise."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def print_table(rows: list[dict], cols: list[str]) -> None:
    cells = [[str(c) for c in cols]] + [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def preset_subset(preset: str, batch: int, batches: int, overrides: tuple = ("epochs=1",)):
    """``(cfg, data)``: a preset at ``batch`` without a validation split, trained on its first
    ``batch * batches`` images (the setup the per-epoch speed benchmarks share)."""
    from stochep.training.presets import load_preset
    cfg = load_preset(preset)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides([f"batch_size={batch}", "val_fraction=0", *overrides]).validate()
    data = cfg.load_data()
    n = batch * batches
    data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    return cfg, data
