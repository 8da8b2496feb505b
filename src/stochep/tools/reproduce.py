"""One command per paper table: run (or collect) every row, then a Markdown report.

``stochep reproduce table1|table2|energy|figures [--budget cpu-small|full] [--out DIR]`` runs each
row as a ``stochep`` command in ``DIR/<table>/<row>`` (``--jobs`` at a time), or collects it when
that directory already holds the finished result, and writes ``DIR/<table>.md``: our number, the
paper's and the difference side by side, the budget, the date and the commit.

Budgets: ``full`` is the paper's (its epochs and widths; meant for GPUs). ``cpu-small`` is sized
for a 2-core CPU within an hour for table 1's MNIST rows (fewer epochs, the narrower
``mnist-2c-small`` for 2C; each row says what it ran). Rows whose data are missing, or that a
budget leaves out, are listed as not run with the reason, never filled in. Tables 1 and 2 are
built from the presets that ship, so a new preset appears in them without changes here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from stochep.data import DATASETS
from stochep.rules import BPTT, FA, ID
from stochep.training.presets import load_preset, preset_names

from .memory_report import paper_row, table_batch_size
from .sweep import run_processes, seed_state

BUDGETS = ("cpu-small", "full")
GPU_ONLY = "not in the cpu-small budget (needs a GPU: docs/results.md)"


@dataclass
class Row:
    """One table row: a label, the paper's number, and per budget the stochep arguments (a
    string instead: the reason the row is not run under that budget)."""

    key: str
    label: str
    paper: float | None
    runs: dict = field(default_factory=dict)  # budget -> list[str] | str
    kind: str = "train"  # train | memory | energy | figure


CPU_SMALL_DATASETS = ("digits", "mnist", "fashion-mnist")  # what 2 cores finish in an hour
CPU_SMALL_EPOCHS = {"mnist-1fc": 3}  # epochs under cpu-small (default 2)
# Table 1 rows that are another rule on a preset's network (paper numbers from Table 1b)
RULE_ROWS = [("mnist-1fc", BPTT.name, None), ("cifar10-5c", FA.name, 71.48),
             ("cifar10-5c", ID.name, 76.25)]


def _small(name: str, dataset: str, names: list[str]) -> list[str] | str:
    """cpu-small arguments: a ``<name>-small`` variant if one ships, fewer epochs; only for the
    datasets a CPU finishes in time (the others are listed as not run)."""
    if dataset not in CPU_SMALL_DATASETS:
        return GPU_ONLY
    small = f"{name}-small" if f"{name}-small" in names else name
    return ["--preset", small, "--epochs", str(CPU_SMALL_EPOCHS.get(name, 2))]


def table1() -> list[Row]:
    """One row per preset (a ``-small`` variant stands in for its preset under cpu-small), plus
    the other rules on the same networks: new presets are picked up without changes here."""
    names = preset_names()
    rows = []
    for name in (n for n in names if not n.endswith("-small")):
        cfg = load_preset(name)
        paper = cfg.paper
        small = _small(name, cfg.dataset, names)
        note = f"; cpu-small: {small[1]}" if isinstance(small, list) and small[1] != name else ""
        rows.append(Row(name, f"{name} ({cfg.dataset}), EP{note}", paper.get("accuracy"),
                        {"full": ["--preset", name], "cpu-small": small}))
    for name, algo, acc in RULE_ROWS:
        if name in names:
            cfg = load_preset(name)
            small = _small(name, cfg.dataset, names)
            if isinstance(small, list):
                small = small[:2] + ["--algo", algo] + small[2:]
            rows.append(Row(f"{name}-{algo}", f"{name} ({cfg.dataset}), {algo.upper()}"
                            + ("" if acc else " (not in the paper)"), acc,
                            {"full": ["--preset", name, "--algo", algo], "cpu-small": small}))
    return rows


def table2() -> list[Row]:
    """BPTT / EP memory of one training step for every preset (paper ratio where Table 2 has
    the network); at Table 2's batch size."""
    rows = []
    for name in preset_names():
        cfg = load_preset(name)
        paper = paper_row(name)
        args = ["--preset", name, "--batch-size", str(table_batch_size(cfg.dataset))]
        small = (args + (["--T-free", "25"] if cfg.dataset == "cifar10" else [])
                 if cfg.dataset in CPU_SMALL_DATASETS + ("cifar10",) else GPU_ONLY)
        rows.append(Row(name, f"{name}: BPTT / EP memory, batch {args[-1]}",
                        paper[3] if paper else None, {"full": args, "cpu-small": small},
                        "memory"))
    return rows


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

TABLES = {"table1": table1, "table2": table2, "energy": lambda: ENERGY,
          "figures": lambda: FIGURES}


def _data_args(row: Row, data_root: str | None) -> list[str]:
    """``--data-dir ROOT/<folder>``, the folder the preset's dataset reads
    (``DatasetSource.data_folder``)."""
    if not data_root or row.kind in ("memory", "energy"):
        return []
    preset = row.runs["full"][row.runs["full"].index("--preset") + 1]
    folder = DATASETS[load_preset(preset).dataset].data_folder()
    return ["--data-dir", os.path.join(data_root, folder)]


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
    t0 = time.perf_counter()
    rows = TABLES[table]()
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
        f.write(report(table, budget, out, status,
                       ran=(len(pending), jobs, time.perf_counter() - t0)))
    os.replace(path + ".tmp", path)
    return path


def _last_line(path: str) -> str:
    with open(path, errors="replace") as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def report(table: str, budget: str, out: str, status: dict,
           ran: tuple[int, int, float] | None = None) -> str:
    """The Markdown report: ours, the paper's, the difference, per row; ``ran`` is (commands
    run, parallel jobs, wall seconds) of this invocation."""
    unit = {"table1": "test accuracy % at best validation", "table2": "BPTT / EP memory",
            "energy": "energy reduction vs full precision", "figures": "figure files"}[table]
    lines = [f"# stochep reproduce {table} (budget {budget})", "",
             f"Date {time.strftime('%Y-%m-%d')}, commit {_commit()}. Numbers: {unit}. Paper "
             "numbers are the paper's; ours come from the runs in this folder."
             + ("" if ran is None else f" This invocation ran {ran[0]} command(s), {ran[1]} at a "
                f"time, in {ran[2] / 60:.1f} min of wall time."), "",
             "| row | ours | paper | difference | status |", "|---|---|---|---|---|"]
    for row in TABLES[table]():
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
