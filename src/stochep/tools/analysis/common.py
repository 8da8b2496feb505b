"""Shared steps of the analyses: a briefly trained network, a recorded trajectory, output files.

Every analysis returns a JSON-ready dict of its numbers; :func:`save` writes it (always) and its
figure (when matplotlib, ``pip install stochep[plot]``, is installed).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch

from stochep.data import Dataset
from stochep.engine.record import record
from stochep.training.config import Config
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer

from ..plot import pyplot, say_no_matplotlib


@dataclass
class Setup:
    """Where an analysis runs: a config (preset + overrides) and its data."""

    cfg: Config
    data: Dataset
    epochs: int = 1  # training epochs for analyses that need a trained network
    train_subset: int = 0  # 0: all training images
    samples: int = 100  # test samples analysed

    @classmethod
    def build(cls, preset: str | None, data_dir: str | None, overrides=(), **kw) -> Setup:
        cfg = load_preset(preset) if preset else Config()
        if data_dir:
            cfg.data_dir = data_dir
        cfg.apply_overrides(list(overrides)).validate()
        data = cfg.load_data()
        if len(data.input_shape) == 4:
            raise ValueError(f"stochep analyze runs on static inputs; dataset {cfg.dataset!r} "
                             "is a sequence of frames")
        return cls(cfg, data, **kw)

    def config(self, **changes) -> Config:
        """This setup's config with ``changes`` (a copy)."""
        cfg = Config.from_dict({**self.cfg.to_dict(), **changes})
        return cfg.validate()


def train_briefly(setup: Setup, **changes) -> tuple[Trainer, float]:
    """A network trained for ``setup.epochs`` epochs on the first ``train_subset`` training
    images (no run directory); returns it and its test accuracy."""
    data = setup.data
    if setup.train_subset:
        data = Dataset(data.name, data.x_train[:setup.train_subset],
                       data.y_train[:setup.train_subset], data.x_test, data.y_test,
                       data.n_classes, data.embedding)
    tr = Trainer(setup.config(epochs=setup.epochs, **changes), data, progress=False)
    summary = tr.fit()
    return tr, summary["test_accuracy"]


def test_batch(tr: Trainer, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random test samples (seeded), shaped for the network."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(tr.data.y_test), generator=g)[:n]
    return tr.inputs(tr.data.x_test[idx]), tr.data.y_test[idx].to(tr.device)


@torch.no_grad()
def trajectory(tr: Trainer, x: torch.Tensor, y: torch.Tensor, beta: float | None = None,
               seed: int = 0) -> dict:
    """States and spikes of every layer at every step of a free phase (``T_free`` steps) and
    a nudged phase (``T_nudge``, ``+beta``) from it, as the network's own neurons run them.

    Returns ``states[layer] [T+1, B, n]`` (step 0 = the zero start) and
    ``spikes[layer] [T, B, n]`` (the signals that drove each step), float32.
    """
    cfg = tr.cfg
    rec = record(tr.net, x, cfg.T_free, seed=seed, y=y, nudge_steps=cfg.T_nudge,
                 beta=cfg.beta if beta is None else beta, dynamics=tr.dynamics)
    return {"states": [s.flatten(2).float() for s in rec.states],
            "spikes": [s.flatten(2).float() for s in rec.spikes],
            "T_free": cfg.T_free, "T_nudge": cfg.T_nudge}


def save(result: dict, out_dir: str, name: str, draw=None) -> list[str]:
    """Write ``NAME.json`` and, if ``draw(plt) -> figure`` is given and matplotlib is installed,
    ``NAME.png`` to ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    written = [path]
    plt = pyplot() if draw is not None else None
    if draw is not None and plt is None:
        say_no_matplotlib(f"{name}.png (its numbers are in {path})")
    if plt is not None:
        fig = draw(plt)
        png = os.path.join(out_dir, f"{name}.png")
        fig.savefig(png, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(png)
    return written
