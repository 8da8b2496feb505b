"""How much of event-MNIST is in one frame: logistic regression (C = 0.1) on the first 3,000
generated training digits, tested on the first 1,000 test digits, from one frame, each frame,
the frames summed, and the frames concatenated (data/event_mnist.py's docstring quotes it).

    python benchmarks/events/floor.py
"""
from __future__ import annotations

import sys

from sklearn.linear_model import LogisticRegression

from stochep.data import load_dataset
from stochep.tools.results import data_dir, print_table, write_json


def score(xtr, ytr, xte, yte) -> float:
    clf = LogisticRegression(C=0.1, max_iter=300)
    clf.fit(xtr.reshape(len(xtr), -1).numpy(), ytr.numpy())
    return round(100 * clf.score(xte.reshape(len(xte), -1).numpy(), yte.numpy()), 1)


def main() -> int:
    ds = load_dataset("event-mnist", data_dir("mnist"))
    xtr, ytr, xte, yte = ds.x_train[:3000], ds.y_train[:3000], ds.x_test[:1000], ds.y_test[:1000]
    frames = [score(xtr[:, t], ytr, xte[:, t], yte) for t in range(xtr.shape[1])]
    rows = [{"input": "middle frame", "test_acc": frames[len(frames) // 2]},
            {"input": "single frames (min-max)", "test_acc": f"{min(frames)}-{max(frames)}"},
            {"input": "frames summed", "test_acc": score(xtr.sum(1), ytr, xte.sum(1), yte)},
            {"input": "frames concatenated", "test_acc": score(xtr, ytr, xte, yte)}]
    print_table(rows, ["input", "test_acc"])
    write_json("event_mnist_floor.json", {"command": "python benchmarks/events/floor.py",
                                          "per_frame": frames, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
