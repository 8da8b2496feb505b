"""Table 1's CIFAR-10 block at reduced width, from the runs of table1.sh: one row per rule (test
accuracy at the best-validation epoch, last-epoch training accuracy, training time) beside the
paper's, and which of the paper's orderings hold. Writes table1_reduced.json and prints the
Markdown table of docs/results.md.

    python benchmarks/learning/table1_collect.py
"""
from __future__ import annotations

import json
import sys

from stochep.tools.results import results_dir, write_json

M = "cifar10-5c-cpu-fast"
# tag -> (row, the paper's Table 1 figure at full width, 200 epochs on a GPU; None: no row)
ROWS = {"ep": ("stochastic EP (Bernoulli)", 81.33), "poisson": ("stochastic EP (Poisson)", 81.73),
        "rate": ("full-precision EP (rates)", None), "bptt": ("BPTT, same spiking net", None),
        "fa": ("feedback alignment", 71.48), "id": ("implicit differentiation", 76.25),
        "bptt-wide": ("BPTT, 2x wider, EP's training time", None),
        "bptt-wide-e3": ("BPTT, 2x wider, 3 epochs", None)}


def load(tag: str) -> dict | None:
    path = results_dir() / f"train_{M}-t1-{tag}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> int:
    rows = {}
    for tag, (label, paper) in ROWS.items():
        d = load(tag)
        if d is None:
            continue
        rows[tag] = {"rule": label, "paper": paper, "epochs": d["epochs_run"],
                     "test_at_best_val": d["test_acc_at_best_val"],
                     "best_val": d["best_val_acc"], "train_acc_last": d["train_acc_per_epoch"][-1],
                     "train_minutes": d["train_minutes"], "command": d.get("command"),
                     "load_average_1min": d.get("load_average_1min")}

    def acc(tag):
        return rows[tag]["test_at_best_val"] if tag in rows else None

    def order(a, b, claim):
        if acc(a) is None or acc(b) is None:
            return {"claim": claim, "held": None, "note": "a row is missing"}
        return {"claim": claim, "held": acc(a) > acc(b), "values": [acc(a), acc(b)]}

    orderings = [order("ep", "fa", "stochastic EP above feedback alignment (81.33 vs 71.48)"),
                 order("ep", "id", "stochastic EP above implicit differentiation (81.33 vs 76.25)"),
                 order("poisson", "ep", "Poisson EP above Bernoulli EP (81.73 vs 81.33)"),
                 order("rate", "ep", "full-precision EP above stochastic EP (3-8 points)"),
                 order("id", "fa", "implicit differentiation above feedback alignment")]
    if acc("bptt") is not None and acc("ep") is not None:
        gap = abs(acc("bptt") - acc("ep"))
        orderings.append({"claim": "BPTT comparable to stochastic EP (within 2 points)",
                          "held": gap <= 0.02, "values": [acc("bptt"), acc("ep")]})
    print("| rule | paper (full width) | test at best val | val | train (last epoch) | epochs "
          "| training time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows.values():
        paper = f"{r['paper']:.2f}%" if r["paper"] else "-"
        print(f"| {r['rule']} | {paper} | **{100 * r['test_at_best_val']:.2f}%** | "
              f"{100 * r['best_val']:.2f}% | {100 * r['train_acc_last']:.2f}% | {r['epochs']} | "
              f"{r['train_minutes']:.1f} min |")
    print()
    for o in orderings:
        print(f"- {o['claim']}: {'held' if o['held'] else 'not held' if o['held'] is False else 'open'}"
              + (f" ({100 * o['values'][0]:.2f} vs {100 * o['values'][1]:.2f})"
                 if "values" in o else ""))
    write_json("table1_reduced.json", {"command": "python benchmarks/learning/table1_collect.py",
                                       "preset": M, "rows": rows, "orderings": orderings})
    return 0


if __name__ == "__main__":
    sys.exit(main())
