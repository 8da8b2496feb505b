"""A linear softmax model on event-MNIST under the old temporal-EP run's optimisation budget:
the same 1,800 training digits (10 frames concatenated, or summed), AdamW at lr 1e-3, batch 32,
2 epochs = 114 optimizer steps, tested on the first 1,000 test digits; and the same model trained
for 30 epochs. Shows how much of the gap between the old EP figures and the converged
logistic-regression floor (93.2%, event_mnist_floor.py) is the budget alone.

    python benchmarks/event_mnist_linear_budget.py
"""
from __future__ import annotations

import sys

import torch
from common import data_dir, print_table, write_json

from stochep.data import load_dataset


def train(xtr, ytr, xte, yte, epochs: int, seed: int = 0) -> tuple[float, int]:
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(xtr.shape[1], 10)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            loss = torch.nn.functional.cross_entropy(lin(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    with torch.no_grad():
        return round(100 * (lin(xte).argmax(1) == yte).float().mean().item(), 1), steps


def main() -> int:
    torch.manual_seed(0)
    ds = load_dataset("event-mnist", data_dir("mnist"), n_train=2000, n_test=1000)
    xtr, ytr, xte, yte = ds.x_train[:1800], ds.y_train[:1800], ds.x_test, ds.y_test
    rows = []
    for name, f in (("frames concatenated", lambda x: x.flatten(1)),
                    ("frames summed", lambda x: x.sum(1).flatten(1))):
        for epochs in (2, 30):
            acc, steps = train(f(xtr), ytr, f(xte), yte, epochs)
            rows.append({"input": name, "epochs": epochs, "steps": steps, "test_acc": acc})
    print_table(rows, list(rows[0]))
    write_json("event_mnist_linear_budget.json", {
        "command": "python benchmarks/event_mnist_linear_budget.py", "n_train": 1800,
        "n_test": 1000, "optimizer": "adamw lr 1e-3 batch 32", "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
