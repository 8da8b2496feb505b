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
from stochep.data.split import split_validation
from stochep.engine.calibrate import calibrate_rates
from stochep.engine.record import record
from stochep.engine.rng import SpikeRNG
from stochep.training.build import build_dynamics
from stochep.training.config import Config
from stochep.training.models import build_network
from stochep.training.presets import load_preset
from stochep.training.trainer import VAL_SPLIT_SEED_OFFSET, Trainer

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


def test_batch(data: Dataset, net, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random test samples of ``data`` (seeded), shaped for ``net``, on its device."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.y_test), generator=g)[:n]
    device = next(net.parameters()).device
    return (data.x_test[idx].reshape(len(idx), *net.input_shape).to(device),
            data.y_test[idx].to(device))


def network_at_init(setup: Setup, n_perclass: int | None = None):
    """The setup's network as a Trainer builds it before its first step (weights seeded by the
    config's seed, biases calibrated on the first training images of the training part), with
    ``n_perclass`` output neurons per class; and the dynamics and the spike stream (``None`` in
    mean field) its phases run with. Nothing else of a run is built (no rule, optimizer or
    run directory). Returns ``(net, dynamics, rng)``."""
    cfg = setup.cfg.resolved()
    data, _ = split_validation(setup.data, cfg.val_fraction, cfg.seed + VAL_SPLIT_SEED_OFFSET)
    device = torch.device(cfg.device)
    net = build_network(cfg, data.input_shape, data.n_classes, data.embedding,
                        n_perclass).to(device)
    if cfg.calibrate_rate > 0:
        x = data.x_train[:cfg.calibrate_batch]
        calibrate_rates(net, x.reshape(len(x), *net.input_shape).to(device), cfg.calibrate_rate,
                        steps=cfg.T_free, iters=cfg.calibrate_iters)
    rng = SpikeRNG(cfg.seed, device) if net.neuron.stochastic else None
    return net, build_dynamics(cfg), rng


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
