"""Seed sweeps: independent runs of one config over several seeds, and their mean and spread.

``stochep sweep --preset NAME --seeds 0-4 --out DIR [--jobs J]`` trains seed ``k`` in
``DIR/seed<k>`` with ``stochep train``, ``J`` processes at a time, and writes ``DIR/sweep.json``:
per seed the run's ``summary.json``, and over the seeds the mean and (sample) standard deviation
of ``test_accuracy_at_best_val``, as the paper reports "mean over five independent runs".

Rerunning the same sweep skips finished seeds (a ``summary.json`` with every planned epoch) and
resumes killed ones from their ``checkpoint_last.pt``; so does a larger ``--seeds`` range.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

from stochep.training.config import ConfigError


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"1,3,7"`` -> [1, 3, 7]; ranges and lists mix."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.strip().partition("-")
            lo, hi = int(a), int(b) if b else int(a)
            if lo < 0 or hi < lo:
                raise ValueError
            seeds += range(lo, hi + 1)
    except ValueError:
        raise ConfigError(f"--seeds must look like 0-4 or 1,3,7 (non-negative), got {text!r}") \
            from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds repeats a seed: {text!r}")
    return seeds


def seed_state(run_dir: str, epochs: int | None) -> str:
    """``"done"`` (summary with all planned epochs), ``"resume"`` (a checkpoint) or ``"new"``."""
    summary = os.path.join(run_dir, "summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            s = json.load(f)
        planned = epochs if epochs is not None else _planned_epochs(run_dir)
        if planned is not None and s.get("epochs", 0) >= planned:
            return "done"
    return "resume" if os.path.exists(os.path.join(run_dir, "checkpoint_last.pt")) else "new"


def _planned_epochs(run_dir: str) -> int | None:
    from stochep.training.config import Config, load_yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return None
    return Config.from_dict(load_yaml(path)).epochs


def train_command(seed: int, run_dir: str, state: str, train_args: list[str]) -> list[str]:
    """The ``stochep train`` command line of one seed (``--resume`` for a killed one)."""
    base = [sys.executable, "-m", "stochep", "train", "--out", run_dir, "--no-progress"]
    if state == "resume":
        epochs = [a for i, a in enumerate(train_args)
                  if i > 0 and train_args[i - 1] == "--epochs"]
        data = [a for i, a in enumerate(train_args)
                if i > 0 and train_args[i - 1] == "--data-dir"]
        return base + ["--resume"] + (["--epochs", epochs[-1]] if epochs else []) \
            + (["--data-dir", data[-1]] if data else [])
    return base + ["--seed", str(seed)] + train_args


def run_processes(tasks: list[tuple], jobs: int, done=None) -> dict:
    """Run ``(key, argv, log_path)`` tasks, ``jobs`` at a time, each writing its output to its
    log (appended); ``done(key, returncode, log_path)`` as each ends. Returns key -> code."""
    pending, running, codes = list(tasks), [], {}
    while pending or running:
        while pending and len(running) < jobs:
            key, argv, path = pending.pop(0)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            logf = open(path, "a")
            running.append((key, path, logf,
                            subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)))
        time.sleep(0.2)
        for item in list(running):
            key, path, logf, proc = item
            if proc.poll() is not None:
                logf.close()
                running.remove(item)
                codes[key] = proc.returncode
                if done is not None:
                    done(key, proc.returncode, path)
    return codes


def run_sweep(out: str, seeds: list[int], train_args: list[str], jobs: int = 1,
              epochs: int | None = None, log=print) -> dict:
    """Train every unfinished seed (``jobs`` at a time), then write and return ``sweep.json``."""
    os.makedirs(out, exist_ok=True)
    pending = []
    for seed in seeds:
        run_dir = os.path.join(out, f"seed{seed}")
        state = seed_state(run_dir, epochs)
        log(f"seed {seed}: {'finished, skipped' if state == 'done' else state}")
        if state != "done":
            pending.append((seed, run_dir, state))
    tasks = [(seed, train_command(seed, run_dir, state, train_args),
              os.path.join(run_dir, "train.log")) for seed, run_dir, state in pending]
    codes = run_processes(tasks, jobs, lambda seed, rc, path: log(
        f"seed {seed}: {'done' if rc == 0 else 'FAILED'} (log: {path})"))
    failed = [seed for seed, rc in codes.items() if rc != 0]
    result = summarize(out, seeds)
    result["failed_seeds"] = failed
    _write_json(os.path.join(out, "sweep.json"), result)
    return result


def summarize(out: str, seeds: list[int]) -> dict:
    """Per-seed summaries and mean / std of ``test_accuracy_at_best_val`` over finished seeds."""
    runs = {}
    for seed in seeds:
        path = os.path.join(out, f"seed{seed}", "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                runs[str(seed)] = json.load(f)
    accs = [r["test_accuracy_at_best_val"] for r in runs.values()
            if r.get("test_accuracy_at_best_val") is not None]
    mean = sum(accs) / len(accs) if accs else None
    std = (math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1))
           if len(accs) > 1 else None)
    return {"seeds": seeds, "n_finished": len(accs), "runs": runs,
            "test_accuracy_at_best_val_mean": mean, "test_accuracy_at_best_val_std": std}


def _write_json(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)
