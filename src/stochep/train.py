"""Training loop: EP updates, evaluation, run directory, checkpoints and exact resume.

Three explicit random streams, all checkpointed: spikes (:class:`SpikeRNG`), data order and beta
signs (``torch.Generator``). Evaluation draws spikes from its own freshly seeded stream, so it
never perturbs training. A checkpoint is written atomically after every epoch; a killed run loses
at most the epoch in progress and ``resume=True`` continues bit-exactly on the CPU.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

import torch
import yaml
from tqdm.auto import tqdm

from .bptt import bptt_gradients
from .checkpoint import load_checkpoint, save_atomic
from .config import Config
from .data import Dataset
from .data.augment import augment_batch
from .dynamics import Dynamics
from .ep import EPConfig, ep_gradients, low_precision_copy, sync_copy
from .models import build_network
from .rng import SpikeRNG

CKPT_FORMAT = "stochep-checkpoint-v1"
EVAL_SEED_OFFSET = 7919


class TrainingDiverged(RuntimeError):
    """NaN or inf appeared in states, gradients or weights."""


@dataclass
class EpochStats:
    loss: float
    acc: float
    rates: list[float]


def make_optimizer(cfg: Config, params):
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def make_scheduler(cfg: Config, opt):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


class Trainer:
    def __init__(self, cfg: Config, data: Dataset, out_dir: str | None = None,
                 progress: bool = True):
        self.cfg = cfg = cfg.validate().resolved()
        self.data = data
        self.out_dir = out_dir
        self.progress = progress
        self.device = torch.device(cfg.device)
        self.net = build_network(cfg, data.input_shape, data.n_classes).to(self.device)
        self.ep = EPConfig(cfg.beta, cfg.T_free, cfg.T_nudge, cfg.estimator,
                           cfg.average_last, cfg.shared_noise)
        self.dynamics = Dynamics(cfg.update, cfg.tol, compile=cfg.compile,
                                 pool_every=cfg.pool_every)
        self.low_net = (low_precision_copy(self.net, getattr(torch, cfg.dynamics_dtype))
                        if cfg.dynamics_dtype != "float32" else None)
        self.opt = make_optimizer(cfg, self.net.parameters())
        self.sched = make_scheduler(cfg, self.opt)
        self.spike_rng = SpikeRNG(cfg.seed, self.device)
        self.data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.sign_gen = torch.Generator().manual_seed(cfg.seed + 2)
        self.epoch = 0
        self.best_acc = -1.0
        self.train_time = 0.0
        self.history: list[dict] = []

    # ---- one epoch --------------------------------------------------------------------
    def train_epoch(self) -> EpochStats:
        cfg, net = self.cfg, self.net
        x_all, y_all = self.data.x_train, self.data.y_train
        order = torch.randperm(len(y_all), generator=self.data_gen)
        n_batches = math.ceil(len(order) / cfg.batch_size)
        tot_loss = tot_correct = 0.0
        tot_rates = torch.zeros(len(net.layer_shapes), dtype=torch.float64)
        seen = 0
        bar = tqdm(range(n_batches), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = self._inputs(x_all[idx]), y_all[idx].to(self.device)
            if cfg.augment:
                x = augment_batch(x, self.data_gen)
            free, loss = self.gradients(x, y)
            self._check_finite(free, b)
            self.opt.step()
            n = len(y)
            seen += n
            tot_loss += loss.sum().item()
            tot_correct += (net.predict(free[-1]) == y).sum().item()
            tot_rates += torch.tensor([r.mean().item() for r in net.rates(free)]) * n
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}",
                            rate=f"{(tot_rates / seen).mean().item():.3f}")
        bar.close()
        self.sched.step()
        return EpochStats(tot_loss / seen, tot_correct / seen, (tot_rates / seen).tolist())

    def gradients(self, x: torch.Tensor, y: torch.Tensor):
        """Write ``p.grad`` with the configured rule; returns (free states, per-sample loss)."""
        if self.cfg.algo == "bptt":
            return bptt_gradients(self.net, x, y, self.cfg.T_free, self.spike_rng)
        if self.low_net is not None:
            sync_copy(self.low_net, self.net)
        res = ep_gradients(self.net, x, y, self.ep, self.spike_rng, self.sign_gen,
                           self.dynamics, self.low_net)
        return res.free, res.loss

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape a batch to the network's input shape (784 -> 1x28x28 for conv), on device."""
        return x.reshape(len(x), *self.net.input_shape).to(self.device)

    def _check_finite(self, states, batch: int) -> None:
        where = f"epoch {self.epoch + 1}, batch {batch + 1}"
        if not all(torch.isfinite(s).all() for s in states):
            raise TrainingDiverged(f"NaN/inf in neuron states at {where}")
        for name, p in self.net.named_parameters():
            if not torch.isfinite(p).all() or not torch.isfinite(p.grad).all():
                raise TrainingDiverged(f"NaN/inf in {name} or its gradient at {where}; "
                                       "lower lr or beta")

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
        """Test accuracy of the free phase with stochastic spikes (as in training)."""
        rng = SpikeRNG(self.cfg.seed + EVAL_SEED_OFFSET, self.device)
        correct = 0
        for i in range(0, len(y), batch_size):
            xb = self._inputs(x[i:i + batch_size])
            states = self.dynamics.relax(self.net, xb, self.net.zero_states(len(xb), xb.dtype),
                                         self.cfg.T_free, rng)
            correct += (self.net.predict(states[-1]).cpu() == y[i:i + batch_size]).sum().item()
        return correct / len(y)

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": CKPT_FORMAT, "config": self.cfg.to_dict(), "epoch": self.epoch,
                "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "spike_rng": self.spike_rng.state_dict(),
                "data_gen": self.data_gen.get_state(), "sign_gen": self.sign_gen.get_state(),
                "best_acc": self.best_acc, "train_time": self.train_time,
                "history": self.history, "input_shape": list(self.data.input_shape),
                "n_classes": self.data.n_classes}

    def load_state_dict(self, ck: dict) -> None:
        self.net.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.spike_rng.load_state_dict(ck["spike_rng"])
        self.data_gen.set_state(ck["data_gen"])
        self.sign_gen.set_state(ck["sign_gen"])
        self.epoch, self.best_acc = ck["epoch"], ck["best_acc"]
        self.train_time, self.history = ck["train_time"], list(ck["history"])

    def _path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)

    def resume(self) -> None:
        self.load_state_dict(load_checkpoint(self._path("checkpoint_last.pt")))

    # ---- the run ------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> dict:
        """Train until ``cfg.epochs`` (or until epoch ``stop_after``); returns the summary."""
        cfg = self.cfg
        last = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
            with open(self._path("config.yaml"), "w") as f:
                yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
        while self.epoch < last:
            t0 = time.perf_counter()
            stats = self.train_epoch()
            dt = time.perf_counter() - t0
            self.train_time += dt
            test_acc = self.evaluate(self.data.x_test, self.data.y_test)
            self.epoch += 1
            row = {"epoch": self.epoch, "train_loss": stats.loss, "train_acc": stats.acc,
                   "test_acc": test_acc, "time_s": dt, "firing_rate": stats.rates,
                   "lr": self.opt.param_groups[0]["lr"]}
            self.history.append(row)
            improved = test_acc > self.best_acc
            self.best_acc = max(self.best_acc, test_acc)
            if self.progress:
                tqdm.write(f"epoch {self.epoch}/{cfg.epochs}  loss {stats.loss:.4f}  "
                           f"train_acc {stats.acc:.4f}  test_acc {test_acc:.4f}  "
                           f"rate {sum(stats.rates) / len(stats.rates):.3f}  {dt:.1f}s")
            if self.out_dir:
                self._save_epoch(row, improved)
        return self.summary()

    def _save_epoch(self, row: dict, improved: bool) -> None:
        state = self.state_dict()
        save_atomic(state, self._path("checkpoint_last.pt"))
        if improved:
            save_atomic(state, self._path("checkpoint_best.pt"))
        # metrics.jsonl is rewritten from the checkpointed history, so a resumed run never
        # duplicates or loses a line.
        _write_atomic_text(self._path("metrics.jsonl"),
                           "".join(json.dumps(r) + "\n" for r in self.history))
        _write_atomic_text(self._path("summary.json"), json.dumps(self.summary(), indent=2))

    def summary(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"test_accuracy": last.get("test_acc"), "best_test_accuracy": self.best_acc,
                "epochs": self.epoch, "train_time_s": self.train_time,
                "preset": self.cfg.preset, "dataset": self.cfg.dataset, "seed": self.cfg.seed}


def _write_atomic_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
