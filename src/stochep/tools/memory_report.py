"""Reports of the memory measurements (``memory.py``): Table 2, the T sweep, text and plot.

``stochep memory`` runs :func:`run_command`; every number comes from
:func:`stochep.tools.memory.measure_in_subprocess`, one fresh process per measurement.
"""
from __future__ import annotations

import os

from stochep.rules import BPTT, EP
from stochep.training.config import Config, ConfigError

from . import memory
from .plot import pyplot, say_no_matplotlib

TABLE2_RULES = (EP.name, BPTT.name)  # the paper's Table 2 compares these two

# Paper Table 2 (GPU MB, NVIDIA RTX A5000; batch 128, 64 for IMDB):
# model -> (dataset, EP, BPTT, the BPTT/EP ratio as printed)
PAPER_TABLE2 = {"1FC": ("MNIST", 141, 179, 1.2), "2FC": ("MNIST", 147, 195, 1.3),
                "2C": ("MNIST", 281, 677, 2.4), "5C": ("CIFAR-10", 7885, 42938, 5.4),
                "3C": ("DVS Gesture", 4617, 10381, 2.2), "1HA1FC": ("IMDB", 12267, 18189, 1.5)}



def paper_row(preset: str):
    """Paper Table 2 entry ``(dataset, EP MB, BPTT MB, ratio)`` for a preset named ``<data>-<model>``."""
    return PAPER_TABLE2.get(preset.rsplit("-", 1)[-1].upper()) if preset else None


def table_batch_size(dataset: str) -> int:
    """Table 2 batch size: 64 for IMDB, 128 otherwise."""
    return 64 if dataset == "imdb" else 128


def _ratio(ep, bptt):
    return bptt / ep if ep and bptt is not None else None


def _fmt(v, spec=".2f", suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


def compare(cfg: Config, batch_size: int, device: str = "cpu", algos=TABLE2_RULES) -> dict:
    """EP and BPTT peaks (each in its own process) and the BPTT/EP ratio."""
    row = {a: memory.measure_in_subprocess(cfg, a, batch_size, device) for a in algos}
    ep, bp = (row.get(a, {}).get("peak_mb") for a in TABLE2_RULES)
    return {"preset": cfg.preset, "dataset": cfg.dataset, "batch_size": batch_size,
            "T_free": cfg.T_free, "ep_mb": ep, "bptt_mb": bp, "ratio": _ratio(ep, bp),
            "runs": row}


def table(device: str = "cpu", T_free: int | None = None, overrides=(), presets=None,
          batch_size: int | None = None) -> dict:
    """Table 2 over every preset (batch 128; 64 for IMDB), with the paper's GPU numbers."""
    from stochep.training.presets import load_preset, preset_names

    rows = []
    for name in presets or preset_names():
        cfg = load_preset(name)
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
    plt = pyplot()
    if plt is None:
        return False

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
    from stochep.training.presets import load_preset

    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if table_mode:
        if preset:
            raise ConfigError("--table measures every preset; drop --preset")
        res = table(device, T_free, overrides, batch_size=batch_size)
        return res, format_table(res)
    if not preset:
        raise ConfigError("--preset is required (or --table for every preset)")
    cfg = load_preset(preset)
    if T_free is not None:
        cfg.set("T_free", T_free)
    cfg = cfg.apply_overrides(list(overrides)).validate()
    batch = batch_size or 128
    if not sweep_T:
        res = compare(cfg, batch, device, (algo,) if algo else TABLE2_RULES)
        return res, format_compare(res)
    res = sweep(cfg, sweep_T, batch, device)
    text = format_sweep(res)
    if plot_sweep(res, plot):
        res["plot"] = os.path.abspath(plot)
        text += f"\nplot: {plot}"
    else:
        say_no_matplotlib(f"{plot} (the numbers are printed above)")
    return res, text
