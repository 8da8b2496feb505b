"""Optimizer and learning-rate schedule of a run (appendix E), with per-layer learning rates."""
from __future__ import annotations

import math

import torch

from .config import Config


def param_groups(cfg: Config, net) -> list[dict]:
    """One optimizer group per interaction (bottom to top), at ``lr * lr_layers[k]``.

    Without ``lr_layers`` every group gets ``lr``. Per-layer rates matter for EP: the readout
    receives the summed error of all ``n_classes * n_perclass`` outputs, so its gradient is far
    larger relative to its weights than the lower layers' (``stochep diagnose``).
    """
    scales = cfg.lr_layers or [1.0] * len(net.interactions)
    if len(scales) != len(net.interactions):
        raise ValueError(f"lr_layers needs one factor per interaction ({len(net.interactions)}, "
                         f"bottom to top), got {len(scales)}")
    return [{"params": list(m.parameters()), "lr": cfg.lr * float(f)}
            for m, f in zip(net.interactions, scales)]


def make_optimizer(cfg: Config, net):
    params = param_groups(cfg, net)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def make_scheduler(cfg: Config, opt):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


def retarget_schedule(sched, opt, epochs: int) -> None:
    """A cosine schedule resumed with another epoch count becomes the one a run planned for
    ``epochs`` from the start would be at this epoch (``T_max = epochs``, each group's learning
    rate set to the closed form there); the epochs already trained stay as they were."""
    if not isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) or sched.T_max == epochs:
        return
    sched.T_max = epochs
    for group, base in zip(opt.param_groups, sched.base_lrs):
        group["lr"] = sched.eta_min + (base - sched.eta_min) * (
            1 + math.cos(math.pi * sched.last_epoch / sched.T_max)) / 2
    sched._last_lr = [g["lr"] for g in opt.param_groups]
