"""Hopfield attention between a token sequence and the first layer (appendix B, eq. 19-20).

The clamped input is a review as token ids ``[B, L]`` (0 = padding); the interaction looks them
up in a fixed embedding matrix (GloVe), giving the stored patterns ``K = V = [k_1 .. k_L]`` of a
modern Hopfield network (Ramsauer et al. 2020). The first layer's state is the state pattern;
projected into the key space by ``W_Q`` it is the query ``Q = W_Q r`` (``r`` the layer's rates,
or its spikes in the stochastic dynamics), and eq. 20 retrieves

    HopAttn(Q, K) = softmax(Q K^T / sqrt(d)) K                (padding masked out)

Our reading, chosen so the attention step IS the gradient of an energy (so EP's contrast is
exact in mean field, and the EP gradient matches BPTT; ``tests/test_attention.py``): the
interaction's energy term is the modern Hopfield log-sum-exp,

    E_att(x, r) = -(1 / b) logsumexp_j(b k_j . W_Q r) - r . bias,     b = 1 / sqrt(d)

whose negative gradient, the drive into the first layer, is

    -dE_att/dr = W_Q^T HopAttn(W_Q r, K) + bias.

So the layer integrates the retrieved pattern (projected back by ``W_Q^T``) plus the feedback of
the layer above (eq. 7), exactly as the paper's "Q is formed by adding the input projected by
W_Q to the feedback of the next layer" once the state has settled: eq. 19's attention applied to
the layer's drive. The retrieval depends on the layer's own activity, so this drive is not
constant within a phase: :meth:`bind` gives the dynamics a per-phase :class:`BoundAttention`
(the embedded sequence and its mask) that adds it each step. The weight contrast is
``dE/dW_Q = -HopAttn(W_Q r, K) r^T``: the retrieved pattern times the layer's activity.

Decision on spikes (the paper marks the net binary): the state passed upward is sampled into
spikes like every layer's; the embeddings stay real-valued.

Two options beyond the paper (``{attention: N, heads: H, sharpness: c}``; defaults 1 and 1 are
the paper's single module):

- ``heads``: ``W_Q`` is ``[H d, N]``, giving H queries ``Q_h = W_Q^h r``; the energy is the sum of
  the H log-sum-exp terms, so the drive is ``sum_h (W_Q^h)^T HopAttn(Q_h, K)``. One query pools
  the review into one d-vector; H queries pool it H ways (docs/text.md has the measurement).
- ``sharpness``: the inverse temperature is ``b = c / sqrt(d)`` instead of ``1 / sqrt(d)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from stochep.validation import check_positive

from .base import INTERACTIONS, Interaction, spec_int

MASKED = -1e9  # score of padding positions (finite, so an all-padding review gives no NaN)


def retrieve(q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, scale: float
             ) -> torch.Tensor:
    """``HopAttn(q, K)`` per sample and head (eq. 20): ``softmax(scale K q) K`` over unmasked
    rows (an all-padding review retrieves zero). ``q`` is ``[B, d]`` or ``[B, H, d]``; the result
    has its shape."""
    heads = q if q.dim() == 3 else q.unsqueeze(1)
    scores = (keys @ heads.transpose(1, 2)).mul(scale).masked_fill(~mask.unsqueeze(-1), MASKED)
    out = (scores.softmax(1) * mask.unsqueeze(-1)).transpose(1, 2) @ keys      # [B, H, d]
    return out if q.dim() == 3 else out.squeeze(1)


class BoundAttention:
    """The attention drive of one phase: ``add_(v, s, alpha)`` adds ``alpha * (-dE_att/ds)``."""

    def __init__(self, inter: HopfieldAttention, keys: torch.Tensor, mask: torch.Tensor):
        self.inter, self.keys, self.mask = inter, keys, mask

    def add_(self, v: torch.Tensor, s: torch.Tensor, alpha: float) -> torch.Tensor:
        w = self.inter.weight
        a = retrieve(self.inter.queries(s, w), self.keys, self.mask, self.inter.scale)
        v.addmm_(a.flatten(1), w, alpha=alpha)
        return v.add_(self.inter.bias, alpha=alpha)


@INTERACTIONS.register("attention")
class HopfieldAttention(Interaction):
    """Token ids ``[B, L]`` -> first layer of ``n_out`` neurons, through Hopfield attention.

    ``embedding``: ``[vocab + 1, d]`` word vectors (row 0 padding), a fixed buffer saved with
    the model. ``W_Q`` (``weight``) has shape ``[heads * d, n_out]``.
    """

    binds_input = True

    @classmethod
    def from_spec(cls, index, spec, in_shape, init_scale=1.0,
                  embedding=None) -> HopfieldAttention:
        """``{attention: N}``, first layer only, over a token sequence; it looks the tokens up
        in ``embedding`` (random vectors of a 1,000-word vocabulary when ``None``, for tools
        that measure without data)."""
        if index != 0:
            raise ValueError(f"layers[{index}]: an attention layer must be the first layer")
        unknown = set(map(str, spec)) - {"attention", "heads", "sharpness"}
        if unknown:
            raise ValueError(f"layers[{index}]: an attention layer takes 'attention' (its width), "
                             f"'heads' and 'sharpness', got keys {', '.join(sorted(unknown))}")
        n = spec_int(f"layers[{index}].attention", spec["attention"])
        heads = spec_int(f"layers[{index}].heads", spec.get("heads", 1))
        sharpness = spec.get("sharpness", 1.0)
        check_positive(f"layers[{index}].sharpness", sharpness)
        if len(in_shape) != 1:
            raise ValueError(f"layers[{index}]: attention needs a token sequence [L], got shape "
                             f"{in_shape}")
        if embedding is None:
            embedding = torch.randn(1001, 50)
            embedding[0] = 0
        return cls(in_shape[0], n, embedding, init_scale=init_scale, heads=heads,
                   sharpness=float(sharpness))

    def __init__(self, seq_len: int, n_out: int, embedding: torch.Tensor,
                 init_scale: float = 1.0, heads: int = 1, sharpness: float = 1.0):
        super().__init__()
        if embedding.dim() != 2 or embedding.shape[0] < 2:
            raise ValueError(f"embedding must be [vocab + 1, d], got {list(embedding.shape)}")
        self.in_shape, self.out_shape = (int(seq_len),), (int(n_out),)
        d = embedding.shape[1]
        self.register_buffer("embedding", embedding.detach().clone().float())
        self.heads = int(heads)
        self.scale = float(sharpness) / math.sqrt(d)
        bound = init_scale / math.sqrt(d)
        self.weight = nn.Parameter(torch.empty(self.heads * d, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound))

    def keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded sequence ``[B, L, d]`` (in the weights' dtype) and its mask ``[B, L]``."""
        ids = x.long()
        if ids.min() < 0 or ids.max() >= self.embedding.shape[0]:
            raise ValueError(f"token ids must be in [0, {self.embedding.shape[0] - 1}]")
        return self.embedding[ids].to(self.weight.dtype), ids > 0

    def queries(self, r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The H queries ``Q_h = W_Q^h r``, ``[B, H, d]``."""
        return (r @ w.t()).view(r.shape[0], self.heads, -1)

    def bind(self, x: torch.Tensor) -> BoundAttention:
        return BoundAttention(self, *self.keys(x))

    def drive_up(self, s_lo, ctx=None):
        raise RuntimeError("HopfieldAttention's drive depends on the layer above; use bind(x)")

    def drive_down(self, s_hi, ctx=None):
        raise RuntimeError("the clamped input takes no feedback")

    def energy(self, x: torch.Tensor, r_hi: torch.Tensor) -> torch.Tensor:
        keys, mask = self.keys(x)
        q = self.queries(r_hi, self.weight)
        scores = (keys @ q.transpose(1, 2)) * self.scale                          # [B, L, H]
        lse = scores.masked_fill(~mask.unsqueeze(-1), MASKED).logsumexp(1).sum(-1)
        lse = torch.where(mask.any(-1), lse, torch.zeros_like(lse))  # no tokens: no term
        return -lse / self.scale - r_hi @ self.bias

    def contrast(self, x: torch.Tensor, r_hi: torch.Tensor) -> list[torch.Tensor]:
        keys, mask = self.keys(x)
        w = self.weight.to(r_hi.dtype)
        a = retrieve(self.queries(r_hi, w), keys.to(r_hi.dtype), mask, self.scale).flatten(1)
        b = r_hi.shape[0]
        return [-(a.t() @ r_hi) / b, -r_hi.mean(0)]

    def example_input(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(1, self.embedding.shape[0], (batch, *self.in_shape),
                             generator=generator).float()

    def macs(self) -> int:
        """Query projection, scores, retrieval and projection back, per step and sample."""
        hd, n = self.weight.shape
        return 2 * hd * n + 2 * self.in_shape[0] * hd
