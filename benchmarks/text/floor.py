"""IMDB floor: logistic regression on the mean word vector of each review (bag of embeddings).

Same tokens, vocabulary, truncation to 256 and 50-d GloVe vectors as the ``imdb-1ha1fc`` preset
(``stochep.data.imdb``); trained on the 25,000 training reviews (``C`` chosen on a 10%
validation split), tested on all 25,000 test reviews.

    python benchmarks/text/floor.py
"""
from __future__ import annotations

import time

import torch
from sklearn.linear_model import LogisticRegression

from stochep.data import load_dataset
from stochep.data.split import holdout_indices
from stochep.tools.results import data_dir, print_table, write_json


def mean_vectors(ids: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    ids = ids.long()
    n = (ids > 0).sum(1, keepdim=True).clamp_min(1)
    return emb[ids].sum(1) / n  # padding rows of emb are zero


def main() -> int:
    t0 = time.perf_counter()
    data = load_dataset("imdb", data_dir("imdb"))
    xtr, xte = mean_vectors(data.x_train, data.embedding), mean_vectors(data.x_test, data.embedding)
    tr, va = holdout_indices(len(data.y_train), 0.1, 0)
    rows = []
    for c in (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(xtr[tr].numpy(), data.y_train[tr].numpy())
        rows.append({"C": c, "val_acc": clf.score(xtr[va].numpy(), data.y_train[va].numpy())})
    best = max(rows, key=lambda r: r["val_acc"])
    clf = LogisticRegression(C=best["C"], max_iter=2000).fit(xtr.numpy(), data.y_train.numpy())
    test = clf.score(xte.numpy(), data.y_test.numpy())
    print_table(rows, ["C", "val_acc"])
    print(f"bag-of-embeddings logistic regression, C={best['C']} (by validation): test accuracy "
          f"{test:.4f} on {len(data.y_test)} reviews ({time.perf_counter() - t0:.0f} s)")
    write_json("imdb_floor.json", {"rows": rows, "chosen_C": best["C"], "test_accuracy": test,
                                   "n_test": len(data.y_test), "dim": data.embedding.shape[1],
                                   "command": "python benchmarks/text/floor.py"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
