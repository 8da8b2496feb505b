"""IMDB ceiling of attention pooling: what backprop reaches on the same inputs, without EP.

A feed-forward model with the ``imdb-1ha1fc`` net's ingredients: H learned queries pool the 50-d
GloVe review by ``softmax(b K q_h) K`` (eq. 20, ``b = sharpness / sqrt(d)``), the H pooled
vectors feed a hidden layer of 256 sigmoid units and a 2-way readout, trained by AdamW 1e-3
(weight decay 0.01, batch 25, cross-entropy). It is not the EP network (its queries are free
parameters, not ``W_Q r``, and nothing is spiking or recurrent): it places a figure by how much
the attention pooling of these word vectors can give at all. Same tokens, vocabulary,
truncation (256) and validation split (10%, seed 0) as the preset; the test set is scored once,
for the configuration and epoch with the best validation accuracy.

    python benchmarks/text/pooling_ceiling.py [--epochs 6] [--heads 1 4] [--sharpness 1 4]
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from stochep.data import load_dataset
from stochep.data.split import holdout_indices
from stochep.tools.results import data_dir, print_table, write_json


class AttentionPool(nn.Module):
    """H learned queries -> H pooled word vectors -> hidden 256 -> 2 scores."""

    def __init__(self, emb: torch.Tensor, heads: int, sharpness: float, hidden: int = 256):
        super().__init__()
        d = emb.shape[1]
        self.emb, self.b = emb, sharpness / math.sqrt(d)
        self.q = nn.Parameter(0.5 * torch.randn(heads, d))
        self.hidden, self.out = nn.Linear(heads * d, hidden), nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keys, mask = self.emb[ids], ids > 0
        w = (keys @ self.q.t() * self.b).masked_fill(~mask.unsqueeze(-1), -1e9).softmax(1)
        pooled = (w.transpose(1, 2) @ keys).flatten(1)
        return self.out(torch.sigmoid(self.hidden(pooled)))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                   for i in range(0, len(y), 1000)) / len(y)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--heads", type=int, nargs="+", default=[1, 4])
    p.add_argument("--sharpness", type=float, nargs="+", default=[1.0, 4.0])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    data = load_dataset("imdb", data_dir("imdb"))
    emb = data.embedding.float()
    x, y = data.x_train.long(), data.y_train.long()
    tr, va = holdout_indices(len(y), 0.1, 0)
    rows, best = [], None
    for heads in args.heads:
        for sharp in args.sharpness:
            torch.manual_seed(args.seed)
            model = AttentionPool(emb, heads, sharp)
            opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
            for epoch in range(1, args.epochs + 1):
                order = tr[torch.randperm(len(tr))]
                for i in range(0, len(tr), 25):
                    b = order[i:i + 25]
                    loss = nn.functional.cross_entropy(model(x[b]), y[b])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                val = accuracy(model, x[va], y[va])
                rows.append({"heads": heads, "sharpness": sharp, "epoch": epoch, "val_acc": val})
                print(f"heads {heads} sharpness {sharp} epoch {epoch}: val {val:.4f}", flush=True)
                if best is None or val > best[0]:
                    best = (val, heads, sharp, epoch,
                            accuracy(model, data.x_test.long(), data.y_test.long()))
    val, heads, sharp, epoch, test = best
    print_table(rows, ["heads", "sharpness", "epoch", "val_acc"])
    print(f"best validation {val:.4f}: heads {heads}, sharpness {sharp}, epoch {epoch}; test "
          f"{test:.4f} on {len(data.y_test)} reviews ({time.perf_counter() - t0:.0f} s)")
    write_json("imdb_pooling_ceiling.json", {
        "rows": rows, "best": {"val_acc": val, "heads": heads, "sharpness": sharp,
                               "epoch": epoch, "test_acc": test},
        "n_test": len(data.y_test), "dim": emb.shape[1], "epochs": args.epochs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
