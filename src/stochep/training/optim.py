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


class SpreadAdamW(torch.optim.Optimizer):
    """AdamW whose batch step is spread over the ``n`` steps a continual rule takes in a batch
    (continual EP with ``rules.cep.moments: batch``; rules/continual.py).

    Calls ``1 .. n`` of a batch each bring an increment ``g_t``. Each moves the weights at once
    by its share of AdamW's step, with the moments as the last batch left them::

        theta <- theta - lr ((1 - b1) g_t + b1 m / n) / (1 - b1^(k+1)) / (sqrt(v / (1 - b2^k)) + eps)
                       - lr wd theta / n

    and the ``n``-th call folds the batch's sum ``G = sum_t g_t`` into the moments
    (``m <- b1 m + (1 - b1) G``, ``v <- b2 v + (1 - b2) G^2``, ``k <- k + 1``). Over a batch the
    shares add up to AdamW's step on ``G`` with ``v`` one batch old, so each weight's rate adapts
    once per batch from the batch's whole update and not from the spike noise of one step. A
    batch before any moments exist (the first) applies nothing until its last call, which takes
    AdamW's whole step.
    """

    def __init__(self, params, n: int, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if n < 1:
            raise ValueError(f"SpreadAdamW needs n >= 1 steps per batch, got {n}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.n = int(n)
        self.calls = 0  # calls made in the current batch

    def state_dict(self):
        d = super().state_dict()
        d["calls"] = self.calls
        return d

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.calls = int(state_dict.pop("calls", 0))
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure=None):
        self.calls += 1
        last = self.calls == self.n
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["k"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                    st["G"] = torch.zeros_like(p)
                g = p.grad
                st["G"].add_(g)
                k = st["k"]
                if k > 0:  # a share of the step now, with last batch's moments
                    denom = (st["v"] / (1 - b2 ** k)).sqrt_().add_(eps)
                    share = g.mul(1 - b1).add_(st["m"], alpha=b1 / self.n).div_(denom)
                    p.mul_(1 - lr * wd / self.n).sub_(share, alpha=lr / (1 - b1 ** (k + 1)))
                if last:
                    G = st["G"]
                    st["m"].mul_(b1).add_(G, alpha=1 - b1)
                    st["v"].mul_(b2).addcmul_(G, G, value=1 - b2)
                    st["k"] = k + 1
                    if k == 0:  # no moments before this batch: AdamW's whole step now
                        denom = (st["v"] / (1 - b2)).sqrt_().add_(eps)
                        p.mul_(1 - lr * wd).addcdiv_(st["m"], denom, value=-lr / (1 - b1))
                    G.zero_()
        if last:
            self.calls = 0


def make_optimizer(cfg: Config, net, spread: int = 0):
    """The run's optimizer over :func:`param_groups`. ``spread = n > 0``: AdamW spread over the
    ``n`` steps a continual rule takes per batch (:class:`SpreadAdamW`)."""
    params = param_groups(cfg, net)
    if cfg.optimizer == "adamw" and spread:
        return SpreadAdamW(params, spread, lr=cfg.lr, weight_decay=cfg.weight_decay)
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
