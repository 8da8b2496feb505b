"""Does the IMDB net learn at a given beta? A short run on 3,000 training reviews.

Trains ``imdb-1ha1fc`` (with ``--set`` overrides) for its epochs on the first 3,000 reviews of
the (shuffled) training split and prints, per epoch, the training loss and accuracy, the firing
rates, and how much the class scores vary across 200 other training reviews (a net whose
scores do not vary cannot discriminate). The preset's ``beta`` deviation was chosen with it:

    python benchmarks/text/beta.py T_free=40 T_nudge=15 lr=1e-3 epochs=3 spikes=rate \
        scheduler=none beta=0.5
    python benchmarks/text/beta.py T_free=80 T_nudge=40 lr=1e-3 epochs=3 spikes=rate \
        scheduler=none beta=0.1
"""
from __future__ import annotations

import sys

import torch

from stochep.data import load_dataset
from stochep.tools.results import data_dir
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer


def main(argv: list[str]) -> int:
    cfg = load_preset("imdb-1ha1fc")
    cfg.data_dir = data_dir("imdb")
    cfg.apply_overrides(argv).validate()
    data = load_dataset("imdb", cfg.data_dir)
    probe_x, probe_y = data.x_train[3000:3200], data.y_train[3000:3200]
    data.x_train, data.y_train = data.x_train[:3000], data.y_train[:3000]
    tr = Trainer(cfg, data, progress=False)
    net, x = tr.net, tr.inputs(probe_x)

    def probe() -> str:
        with torch.no_grad():
            states = tr.dynamics.relax(net, x, net.zero_states(len(x)), cfg.T_free,
                                       tr.streams.spike).final
        s = net.class_scores(states[-1])
        acc = (s.argmax(1) == probe_y).float().mean().item()
        return f"score std across reviews {s.std(0).mean().item():.4f}, probe acc {acc:.3f}"

    print(f"init: {probe()}")
    for epoch in range(cfg.epochs):
        st = tr.train_epoch()
        print(f"epoch {epoch + 1}: loss {st.loss:.3f} train_acc {st.acc:.3f} "
              f"rates {[round(r, 3) for r in st.rates]} {probe()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
