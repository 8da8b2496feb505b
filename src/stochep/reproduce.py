"""One command per paper table: run (or collect) every row, then a Markdown report.

``stochep reproduce table1|table2|energy|figures [--budget cpu-small|full] [--out DIR]`` runs each
row as a ``stochep`` command in ``DIR/<table>/<row>`` (``--jobs`` at a time), or collects it when
that directory already holds the finished result, and writes ``DIR/<table>.md``: our number, the
paper's and the difference side by side, the budget, the date and the commit.

Budgets: ``full`` is the paper's (its epochs and widths; meant for GPUs). ``cpu-small`` is sized
for a 2-core CPU within an hour for table 1's MNIST rows (fewer epochs, the narrower
``mnist-2c-small`` for 2C; each row says what it ran). Rows whose data are missing, or that a
budget leaves out, are listed as not run with the reason, never filled in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .sweep import run_processes, seed_state

BUDGETS = ("cpu-small", "full")
GPU_ONLY = "not in the cpu-small budget (needs a GPU: README, 'Results')"


@dataclass
class Row:
    """One table row: a label, the paper's number, and per budget the stochep arguments (a
    string instead: the reason the row is not run under that budget)."""

    key: str
    label: str
    paper: float | None
    runs: dict = field(default_factory=dict)  # budget -> list[str] | str
    kind: str = "train"  # train | memory | energy | figure


def _train(preset, extra=(), small=None, algo=None):
    base = ["--preset", preset] + (["--algo", algo] if algo else []) + list(extra)
    return {"full": base, "cpu-small": small if isinstance(small, str) else base + (small or [])}


TABLE1 = [
    Row("mnist-1fc", "1FC, MNIST, EP", 97.46, _train("mnist-1fc", small=["--epochs", "3"])),
    Row("mnist-2fc", "2FC, MNIST, EP", 98.05, _train("mnist-2fc", small=["--epochs", "2"])),
    Row("mnist-2c", "2C, MNIST, EP (cpu-small: mnist-2c-small, 16/32 channels, T 40+15)", 98.99,
        {"full": ["--preset", "mnist-2c"],
         "cpu-small": ["--preset", "mnist-2c-small", "--epochs", "2"]}),
    Row("mnist-1fc-bptt", "1FC, MNIST, BPTT on the same network (not in the paper)", None,
        _train("mnist-1fc", algo="bptt", small=["--epochs", "2"])),
    Row("cifar10-5c", "5C, CIFAR-10, EP", 81.33, _train("cifar10-5c", small=GPU_ONLY)),
    Row("cifar10-5cp", "5CP (Poisson), CIFAR-10, EP", 81.73, _train("cifar10-5cp", small=GPU_ONLY)),
    Row("cifar10-5c-fa", "5C, CIFAR-10, FA", 71.48, _train("cifar10-5c", algo="fa",
                                                            small=GPU_ONLY)),
    Row("cifar10-5c-id", "5C, CIFAR-10, ID", 76.25, _train("cifar10-5c", algo="id",
                                                            small=GPU_ONLY)),
    Row("dvsgesture-3c", "3C, DVS Gesture, EP", 89.92, _train("dvsgesture-3c", small=GPU_ONLY)),
    Row("imdb-1ha1fc", "1HA1FC, IMDB, EP", 80.99, _train("imdb-1ha1fc", small=GPU_ONLY)),
]

_MEM_PAPER = {"mnist-1fc": 1.2, "mnist-2fc": 1.3, "mnist-2c": 2.4, "cifar10-5c": 5.4,
              "dvsgesture-3c": 2.2, "imdb-1ha1fc": 1.5}
TABLE2 = [Row(p, f"{p}: BPTT / EP memory, batch {64 if p.startswith('imdb') else 128}", r,
              {"full": ["--preset", p, "--batch-size", "64" if p.startswith("imdb") else "128"],
               "cpu-small": ["--preset", p] + (["--T-free", "25"] if p == "cifar10-5c" else [])
               if p.startswith(("mnist", "cifar")) else GPU_ONLY}, "memory")
          for p, r in _MEM_PAPER.items()]

ENERGY = [Row("mnist-2fc", "2FC at the paper's rates 0.21/0.19/0.12 (paper's reading)", 19.0,
              {b: ["--preset", "mnist-2fc", "--rates", "0.21", "0.19", "0.12"] for b in BUDGETS},
              "energy"),
          Row("mnist-2c", "2C at the paper's rates 0.27/0.19/0.10 (paper's reading)", 23.0,
              {b: ["--preset", "mnist-2c", "--rates", "0.27", "0.19", "0.10"] for b in BUDGETS},
              "energy")]

FIGURES = [Row(name, f"figure: {name} (mnist-1fc)", None,
               {"full": [name, "--preset", "mnist-1fc"],
                "cpu-small": [name, "--preset", "mnist-1fc", "--train-subset", "5000"]}, "figure")
           for name in ("stability", "firing", "error-signal", "mean-field")]

TABLES = {"table1": TABLE1, "table2": TABLE2, "energy": ENERGY, "figures": FIGURES}


def _data_args(row: Row, data_root: str | None) -> list[str]:
    """``--data-dir ROOT/<dataset>`` (the dataset is the preset name's first part)."""
    if not data_root or row.kind in ("memory", "energy"):
        return []
    preset = row.runs["full"][row.runs["full"].index("--preset") + 1]
    return ["--data-dir", os.path.join(data_root, preset.split("-")[0])]


def command(row: Row, budget: str, row_dir: str, data_root: str | None) -> list[str] | None:
    """The ``stochep`` command of a row (``None``: already finished, collect it)."""
    args = row.runs[budget]
    if row.kind == "train":
        epochs = args[args.index("--epochs") + 1] if "--epochs" in args else None
        state = seed_state(row_dir, int(epochs) if epochs else None)
        if state == "done":
            return None
        if state == "resume":
            return ["train", "--resume", "--out", row_dir, "--no-progress"] + \
                (["--epochs", epochs] if epochs else [])
        return ["train", *args, *_data_args(row, data_root), "--out", row_dir, "--no-progress"]
    if row.kind == "figure":
        done = os.path.isdir(row_dir) and any(f.endswith(".json") for f in os.listdir(row_dir))
        return None if done else ["analyze", *args, *_data_args(row, data_root), "--out", row_dir]
    result = os.path.join(row_dir, "result.json")
    if os.path.exists(result):
        return None
    return [row.kind, *args, "--json", result]


def our_number(row: Row, row_dir: str) -> float | None:
    """Read the row's figure: accuracy %, BPTT/EP ratio, energy reduction; None if absent."""
    try:
        if row.kind == "train":
            with open(os.path.join(row_dir, "summary.json")) as f:
                acc = json.load(f)["test_accuracy_at_best_val"]
            return None if acc is None else 100 * acc
        if row.kind == "figure":
            return None
        with open(os.path.join(row_dir, "result.json")) as f:
            r = json.load(f)
        return r["ratio"] if row.kind == "memory" else r["paper_convention"]["reduction"]
    except (OSError, KeyError, ValueError):
        return None


def reproduce(table: str, budget: str, out: str, data_root: str | None = None, jobs: int = 1,
              log=print) -> str:
    """Run or collect every row of ``table``; write and return the path of the report."""
    rows = TABLES[table]
    status: dict[str, str] = {}
    pending = []
    for row in rows:
        row_dir = os.path.join(out, table, row.key)
        if isinstance(row.runs[budget], str):
            status[row.key] = f"not run: {row.runs[budget]}"
            continue
        cmd = command(row, budget, row_dir, data_root)
        if cmd is None:
            status[row.key] = "collected"
        else:
            pending.append((row, row_dir, cmd))
    for row, _, cmd in pending:
        log(f"{table} {row.key}: stochep {' '.join(cmd)}")

    def done(key, rc, path):
        status[key] = "ran" if rc == 0 else f"not run: failed ({_last_line(path)})"
        log(f"{table} {key}: {status[key]}")

    run_processes([(row.key, [sys.executable, "-m", "stochep", *cmd],
                    os.path.join(row_dir, "log.txt")) for row, row_dir, cmd in pending],
                  jobs, done)
    path = os.path.join(out, f"{table}.md")
    with open(path + ".tmp", "w") as f:
        f.write(report(table, budget, out, status))
    os.replace(path + ".tmp", path)
    return path


def _last_line(path: str) -> str:
    with open(path, errors="replace") as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def report(table: str, budget: str, out: str, status: dict) -> str:
    """The Markdown report: ours, the paper's, the difference, per row."""
    unit = {"table1": "test accuracy % at best validation", "table2": "BPTT / EP memory",
            "energy": "energy reduction vs full precision", "figures": "figure files"}[table]
    lines = [f"# stochep reproduce {table} (budget {budget})", "",
             f"Date {time.strftime('%Y-%m-%d')}, commit {_commit()}. Numbers: {unit}. Paper "
             "numbers are the paper's; ours come from the runs in this folder.", "",
             "| row | ours | paper | difference | status |", "|---|---|---|---|---|"]
    for row in TABLES[table]:
        row_dir = os.path.join(out, table, row.key)
        ours = our_number(row, row_dir)
        if row.kind == "figure" and os.path.isdir(row_dir):
            files = sorted(f for f in os.listdir(row_dir) if f.endswith((".png", ".pdf")))
            ours_s = ", ".join(f"[{f}]({table}/{row.key}/{f})" for f in files) or "-"
        else:
            ours_s = "-" if ours is None else f"{ours:.2f}"
        paper_s = "-" if row.paper is None else f"{row.paper:.2f}"
        diff = "-" if ours is None or row.paper is None else f"{ours - row.paper:+.2f}"
        lines.append(f"| {row.label} | {ours_s} | {paper_s} | {diff} | "
                     f"{status.get(row.key, '-')} |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                              capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"
