"""Run a command and keep what it printed as a result JSON with provenance.

For figures that a command prints (``stochep gradcheck``, ``stochep diagnose``, ``stochep
memory --sweep-T``, a training run's summary line): the JSON holds the command, its exit code,
its standard output and, for a ``stochep train`` with ``--out``, the run's ``summary.json``.

    python benchmarks/record.py NAME -- stochep gradcheck
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from stochep.tools.results import write_json


def run_record(run_dir: str) -> dict:
    """A training run's ``summary.json`` and its per-epoch rows (``metrics.jsonl``: accuracies,
    loss and training time of each epoch), where the run directory holds them."""
    out = {}
    summary = os.path.join(run_dir, "summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            out["summary"] = json.load(f)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        keys = ("epoch", "train_loss", "train_acc", "val_acc", "test_acc", "time_s")
        extra = ("feedback_angle",)  # a rule's own per-epoch figures, where it logs them
        with open(metrics) as f:
            out["epochs"] = [{k: row.get(k) for k in keys + tuple(e for e in extra if e in row)}
                             for row in map(json.loads, filter(str.strip, f))]
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: python benchmarks/record.py NAME -- COMMAND ...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="result file name, without .json")
    args = p.parse_args(argv[:cut])
    command = argv[cut + 1:]
    t = time.perf_counter()
    res = subprocess.run(command, capture_output=True, text=True, check=False)
    payload = {"recorded_command": shlex.join(command), "returncode": res.returncode,
               "wall_s": round(time.perf_counter() - t, 1), "stdout": res.stdout.splitlines()}
    if "--out" in command:
        payload.update(run_record(command[command.index("--out") + 1]))
    write_json(f"{args.name}.json", payload)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr[-2000:])
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
