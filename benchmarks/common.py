"""Shared helpers for the benchmark scripts: data location, timing, table and JSON output."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def data_dir(name: str) -> str:
    return os.environ.get(f"STOCHEP_{name.upper()}_DIR", str(SHARED_DATA / name))


def machine() -> dict:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}


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


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path


def preset_subset(preset: str, batch: int, batches: int, overrides: tuple = ("epochs=1",)):
    """``(cfg, data)``: a preset at ``batch`` without a validation split, trained on its first
    ``batch * batches`` images (the setup the per-epoch speed benchmarks share)."""
    from stochep.presets import load_preset
    cfg, _ = load_preset(preset)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides([f"batch_size={batch}", "val_fraction=0", *overrides]).validate()
    data = cfg.load_data()
    n = batch * batches
    data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    return cfg, data
