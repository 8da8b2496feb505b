"""stochep against the public EP peer, side by side: alternating rounds, one thread each.

Each round trains the peer (``peer_bench.py``: its own ``train()``, batch 50, Adam 5e-4) on the
first ``--train`` (45,000) MNIST training images, then ``stochep train --preset PRESET`` on the
first 50,000 (its validation split holds 5,000 out, so it trains on 45,000 too), as
``../shared/peer/compare.sh`` does, and records both training
rates (training loop only, evaluation excluded), their ratio, each side's test accuracy and the
load average before each run (the machine is shared). ``--epochs`` (stochep) and
``--peer-epochs`` set the epochs of each side per round: with stochep at twice the peer's rate,
2 against 1 is the accuracy after the same training time (stochep's is the test accuracy at its
best validation epoch, the peer's its last epoch's).

    PEER_DIR=DIR OMP_NUM_THREADS=1 python benchmarks/speed/peer_rounds.py --rounds 3 \\
        --preset mnist-1fc mnist-1fc-fast --epochs 1 2 --peer-epochs 1 --name NAME.json \\
        [--peer-args "--archi 784 512 512 10 --T1 60 --T2 15"] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

from stochep.tools.results import write_json

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "mnist")


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def peer_run(peer_args: list[str], epochs: int, train: int) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "peer_bench.py"), "--train-subset", str(train),
           "--epochs", str(epochs), *peer_args]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def stochep_run(preset: str, sets: list[str], epochs: int, out_dir: str, data_dir: str,
                train: int) -> dict:
    # the validation split holds out 10% of the subset: train / 0.9 images leave `train`
    preset, _, own = preset.partition("@")  # NAME@key=value,key=value: the preset changed
    cmd = ["stochep", "train", "--preset", preset, "--data-dir", data_dir, "--train-subset",
           str(round(train / 0.9)), "--epochs", str(epochs), "--no-progress", "--out", out_dir]
    for s in sets + [s for s in own.split(",") if s]:
        cmd += ["--set", s]
    load = os.getloadavg()
    subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True)
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(out_dir, "summary.json")) as f:
        summary = json.load(f)
    time_s = sum(r["time_s"] for r in rows)
    return {"train_time_s": time_s, "samples_per_s": train * len(rows) / time_s,
            "epoch_times_s": [r["time_s"] for r in rows],
            "val_acc": [r["val_acc"] for r in rows], "test_acc": [r["test_acc"] for r in rows],
            "test_acc_at_best_val": summary.get("test_accuracy_at_best_val"),
            "loadavg_before": load, "loadavg": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, nargs="+", default=[1],
                    help="stochep's epochs per round, one per preset")
    ap.add_argument("--peer-epochs", type=int, default=None, help="the peer's (default: --epochs)")
    ap.add_argument("--preset", nargs="+", default=["mnist-1fc"],
                    help="stochep presets (NAME or NAME@key=value,key=value), each run in "
                         "every round after the peer")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--peer-args", default="")
    ap.add_argument("--data-dir", default=DATA)
    ap.add_argument("--train", type=int, default=45000, help="training images of each side")
    ap.add_argument("--name", required=True, help="result JSON name in benchmarks/results/")
    a = ap.parse_args()
    epochs = a.epochs * len(a.preset) if len(a.epochs) == 1 else a.epochs
    if len(epochs) != len(a.preset):
        ap.error("--epochs: one value, or one per preset")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, a.rounds + 1):
            peer = peer_run(shlex.split(a.peer_args), a.peer_epochs or epochs[0], a.train)
            row = {"round": r, "peer": peer, "stochep": {}, "ratio": {}}
            for preset, n in zip(a.preset, epochs):
                ours = stochep_run(preset, a.sets, n, os.path.join(tmp, f"{len(row['ratio'])}-{r}"),
                                   a.data_dir, a.train)
                row["stochep"][preset] = ours
                row["ratio"][preset] = ours["samples_per_s"] / peer["samples_per_s"]
                print(json.dumps({
                    "round": r, "preset": preset, "epochs": n,
                    "peer_samples_per_s": round(peer["samples_per_s"], 1),
                    "stochep_samples_per_s": round(ours["samples_per_s"], 1),
                    "ratio": round(row["ratio"][preset], 3), "peer_test": peer["test_acc"][-1],
                    "stochep_val": ours["val_acc"], "stochep_test_at_best_val":
                    ours["test_acc_at_best_val"], "peer_time_s": round(peer["train_time_s"], 1),
                    "stochep_time_s": round(ours["train_time_s"], 1),
                    "load": [peer["loadavg_before"][0], ours["loadavg_before"][0]]}), flush=True)
            rounds.append(row)
    median = {p: statistics.median(r["ratio"][p] for r in rounds) for p in a.preset}
    print(f"median stochep/peer training samples/s: {median}")
    write_json(a.name, {"command": " ".join(map(shlex.quote, sys.argv)), "presets": a.preset,
                        "sets": a.sets, "peer_args": a.peer_args, "epochs": epochs,
                        "peer_epochs": a.peer_epochs or epochs[0], "train": a.train,
                        "rounds": rounds, "median_ratio": median})


if __name__ == "__main__":
    main()
