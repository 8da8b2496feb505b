"""Optimizer and learning-rate schedule of a run (appendix E), with per-layer learning rates."""
from __future__ import annotations

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
