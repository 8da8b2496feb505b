"""Exponential moving average of the weights (Polyak averaging), the weights evaluation uses.

A stochastic EP update is a noisy estimate of the gradient (spike noise on top of minibatch
noise), so the trained weights jitter around the path the mean update takes. Evaluating an
average of the recent weights removes part of that jitter without touching training: after each
optimizer step ``a <- d a + (1 - d) w``, with the decay warmed up as
``d = min(ema_decay, (1 + n) / (10 + n))`` after ``n`` updates so the average is not held at the
initial weights early in a run. Training always continues from the raw weights ``w``; the
average is part of the checkpoint, so a resumed run evaluates exactly as an uninterrupted one.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


class WeightAverage:
    """The moving average of ``net``'s parameters, with decay ``decay`` in (0, 1)."""

    def __init__(self, net: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) (0 = off), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.avg = [p.detach().clone() for p in net.parameters()]

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        """Fold ``net``'s current parameters into the average (call after each optimizer step)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for a, p in zip(self.avg, net.parameters()):
            a.lerp_(p.detach(), 1 - d)
        self.updates += 1

    @contextmanager
    def applied(self, net: torch.nn.Module):
        """``net`` with the averaged parameters inside the block, its own restored after it."""
        own = [p.detach().clone() for p in net.parameters()]
        with torch.no_grad():
            for p, a in zip(net.parameters(), self.avg):
                p.copy_(a)
        try:
            yield net
        finally:
            with torch.no_grad():
                for p, w in zip(net.parameters(), own):
                    p.copy_(w)

    def state_dict(self) -> dict:
        """The update count and the average (the decay is the config's ``ema_decay``)."""
        return {"updates": self.updates, "avg": [a.clone() for a in self.avg]}

    def load_state_dict(self, state: dict) -> None:
        avg = state["avg"]
        if len(avg) != len(self.avg) or any(a.shape != b.shape for a, b in zip(avg, self.avg)):
            raise ValueError("the checkpoint's weight average does not match the network's "
                             "parameters")
        self.updates = int(state["updates"])
        self.avg = [a.to(b.device, b.dtype).clone() for a, b in zip(avg, self.avg)]
