"""Copy a finished (or interrupted) run directory's numbers into ``benchmarks/results/``.

Reads ``summary.json``, ``metrics.jsonl`` and ``config.yaml`` of a run made with
``stochep train --out RUNDIR`` and writes them, with the command that produced the run, as one
JSON file (checkpoints stay out of the repository).

    python benchmarks/learning/collect_run.py RUNDIR train_mnist-2fc.json --command "stochep train ..."
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from stochep.tools.results import write_json
from stochep.training.config import Config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("name", help="file name under benchmarks/results/")
    p.add_argument("--command", required=True, help="the command that produced the run")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    summary_file = run / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    config = Config.from_dict(yaml.safe_load((run / "config.yaml").read_text())).to_dict()
    write_json(args.name, {
        "command": args.command, "summary": summary, "config": config,
        "val_acc_per_epoch": [r.get("val_acc") for r in rows],
        "test_acc_per_epoch": [r["test_acc"] for r in rows],
        "epoch_seconds": [r["time_s"] for r in rows],
        "firing_rate_per_epoch": [r["firing_rate"] for r in rows], "metrics": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
