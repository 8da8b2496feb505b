"""Persistent free phases: each training sample's free phase starts from its own free equilibrium
of the previous epoch (the warm start of eq. 18, applied across epochs instead of frames).

The store keeps one state per training sample and layer, in the dynamics' float32, on the
training device: ``n_samples x sum(layer sizes) x 4`` bytes (``nbytes``); for ``mnist-2fc``
(54,000 samples, layers 512 + 512 + 700) that is 372 MB. It is checkpointed, so a resumed run
continues from the same states and stays bit-exact.
"""
from __future__ import annotations

import torch


class FreeStateStore:
    """Free equilibria by training-sample index; a sample never seen starts from zeros."""

    def __init__(self, n_samples: int, layer_shapes, device, dtype=torch.float32):
        self.states = [torch.zeros(n_samples, *shape, dtype=dtype, device=device)
                       for shape in layer_shapes]
        self.seen = torch.zeros(n_samples, dtype=torch.bool)

    @property
    def nbytes(self) -> int:
        return sum(s.numel() * s.element_size() for s in self.states)

    def get(self, idx: torch.Tensor) -> list[torch.Tensor] | None:
        """The stored states of samples ``idx``, or ``None`` unless every one of them has been
        seen (then the batch starts from zeros with the full free phase)."""
        if not bool(self.seen[idx].all()):
            return None
        dev_idx = idx.to(self.states[0].device)
        return [s[dev_idx] for s in self.states]

    def put(self, idx: torch.Tensor, states: list[torch.Tensor]) -> None:
        dev_idx = idx.to(self.states[0].device)
        for store, s in zip(self.states, states):
            store[dev_idx] = s.detach().to(store.dtype)
        self.seen[idx] = True

    def state_dict(self) -> dict:
        return {"states": [s.cpu() for s in self.states], "seen": self.seen.clone()}

    def load_state_dict(self, d: dict) -> None:
        if len(d["states"]) != len(self.states) or any(
                a.shape != b.shape for a, b in zip(d["states"], self.states)):
            raise ValueError("stored free states do not fit this network and training set")
        for store, s in zip(self.states, d["states"]):
            store.copy_(s)
        self.seen.copy_(d["seen"])
