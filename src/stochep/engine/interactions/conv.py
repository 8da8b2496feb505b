"""Convolution + max-pooling interaction: energy term ``-r_hi . (maxpool(conv(r_lo)) + b)``.

The coupling of eq. 3/13 for convolutional layers: ``up(r_lo) = P(W * r_lo) + b`` with ``W *`` a
2-D convolution and ``P`` a max-pooling (``pool = 1``: no pooling). The pooling indices are
taken from the *rates* below (``context``), never from spikes: binary spikes tie almost
everywhere. Given the indices the term is bilinear in ``(r_lo, r_hi)``, so

- ``drive_up``   = conv(s_lo) gathered at the indices, plus ``b``        (``-dE/dr_hi``);
- ``drive_down`` = conv_transpose(unpool(s_hi))                          (``-dE/dr_lo``);
- ``contrast``   = ``-conv2d_weight(r_lo, unpool(r_hi)) / B`` and ``-sum(r_hi) / B``.

Each drive is one convolution, without autograd. Un-pooling places the upper values at their
arg-max positions (``max_unpool2d``). Where the windows tile the convolution output exactly
(``pool_stride = pool`` dividing its size, every preset's case) the context carries a 0/1 mask of
those positions, made once when the indices are, and un-pooling is one product with it: one
kernel instead of a zero fill and a ``scatter_add`` (which, with ``deterministic=true``, runs
serialised on a GPU). Overlapping or ragged windows keep the ``scatter_add``, which sums
overlaps as autograd does.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .base import INTERACTIONS, Interaction, spec_int

# a conv layer's keys and their defaults (``conv`` is required)
CONV_KEYS = {"conv": None, "kernel": 3, "stride": 1, "padding": 0, "pool": 1, "pool_stride": None}


def _pair(v, name: str) -> tuple[int, int]:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or any(isinstance(a, bool) or not isinstance(a, int) for a in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory order (same values and shape): oneDNN's native layout on
    the CPU, where a convolution of it ran faster than of NCHW (docs/speed.md)."""
    return x.contiguous(memory_format=torch.channels_last)


class PoolContext(NamedTuple):
    """Where each pooling window's maximum sits: ``index`` (flat position in the convolution
    output, ``[B, C, H', W']``) and, when the windows tile that output, ``mask`` (``True`` at
    each window's maximum, ``[B, C, H', p_H, W', p_W]``), else ``None``."""

    index: torch.Tensor
    mask: torch.Tensor | None


@INTERACTIONS.register("conv")
class ConvPool(Interaction):
    """2-D convolution (``nn.Conv2d`` layout) followed by max-pooling (floor mode).

    in_shape: ``(C_in, H, W)``. ``out_shape`` is ``(C_out, H', W')`` after the convolution and
    the pooling (``pool_stride`` defaults to ``pool``). Weights and bias are drawn like
    ``nn.Conv2d``'s default, uniform(+-1/sqrt(C_in * K_H * K_W)), times ``init_scale``; conv
    layers settle only for small weights (GUIDE 1.3).
    """

    bilinear = True  # given the pooling indices (module docstring)
    supports_feedback = True  # the down drive reads down_weight() (base.set_feedback)
    needs_image = True

    @classmethod
    def from_spec(cls, index, spec, in_shape, init_scale=1.0, embedding=None) -> ConvPool:
        """``{conv: C, kernel: 3, stride: 1, padding: 0, pool: 1, pool_stride: pool}``."""
        unknown = sorted(set(map(str, spec)) - set(CONV_KEYS))
        if unknown:
            raise ValueError(f"layers[{index}]: unknown conv key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(CONV_KEYS)}")
        s = {**CONV_KEYS, **spec}
        for key, v in s.items():
            if not (v is None and key == "pool_stride"):
                spec_int(f"layers[{index}].{key}", v, 0 if key == "padding" else 1)
        if len(in_shape) != 3:
            raise ValueError(f"layers[{index}]: a conv layer needs an image (C, H, W) below "
                             f"it, got shape {in_shape} (conv cannot follow dense)")
        try:
            return cls(in_shape, s["conv"], s["kernel"], s["stride"], s["padding"], s["pool"],
                       s["pool_stride"], init_scale=init_scale)
        except ValueError as e:
            raise ValueError(f"layers[{index}]: {e}") from None

    def __init__(self, in_shape, out_channels: int, kernel, stride=1, padding=0, pool=1,
                 pool_stride=None, bias: bool = True, init_scale: float = 1.0):
        super().__init__()
        in_shape = tuple(in_shape)
        if len(in_shape) != 3 or any(isinstance(a, bool) or not isinstance(a, int) or a < 1
                                     for a in in_shape):
            raise ValueError(f"in_shape must be (C, H, W) of positive ints, got {in_shape!r}")
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be an integer >= 1, got {out_channels!r}")
        self.kernel = _pair(kernel, "kernel")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.pool = _pair(pool, "pool")
        self.pool_stride = _pair(self.pool if pool_stride is None else pool_stride, "pool_stride")
        for name, v, low in (("kernel", self.kernel, 1), ("stride", self.stride, 1),
                             ("padding", self.padding, 0), ("pool", self.pool, 1),
                             ("pool_stride", self.pool_stride, 1)):
            if min(v) < low:
                raise ValueError(f"{name} must be >= {low}, got {v!r}")
        c, h, w = in_shape
        conv = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in
                     zip((h, w), self.padding, self.kernel, self.stride))
        if min(conv) < 1:
            raise ValueError(f"convolution output is empty: input {h}x{w} with kernel "
                             f"{self.kernel}, padding {self.padding}, stride {self.stride} "
                             f"gives {conv[0]}x{conv[1]}")
        out = tuple((n - k) // s + 1 for n, k, s in zip(conv, self.pool, self.pool_stride))
        if min(out) < 1:
            raise ValueError(f"pooling output is empty: convolution output {conv[0]}x{conv[1]} "
                             f"with pool {self.pool}, pool_stride {self.pool_stride} gives "
                             f"{out[0]}x{out[1]}")
        self.in_shape = in_shape
        self.conv_shape = (out_channels, *conv)
        self.out_shape = (out_channels, *out)
        # output_padding that makes the transposed convolution return exactly (H, W)
        self._out_pad = tuple(n - ((o - 1) * s - 2 * p + k) for n, o, s, p, k in
                              zip((h, w), conv, self.stride, self.padding, self.kernel))
        # stride 1: the transposed convolution is a convolution with the flipped kernel and
        # padding k - 1 - p, which oneDNN runs faster (docs/speed.md)
        self._flip_pad = tuple(k - 1 - p for k, p in zip(self.kernel, self.padding)) \
            if self.stride == (1, 1) and all(p <= k - 1 for k, p in
                                             zip(self.kernel, self.padding)) else None
        self.pooled = self.pool != (1, 1) or self.pool_stride != (1, 1)
        self._flip_cache = None  # (weight version, flipped kernel): _flipped
        # windows that tile the convolution output exactly: un-pooling by a mask (_unpool)
        self.tiles = self.pooled and self.pool == self.pool_stride and all(
            n % p == 0 for n, p in zip(conv, self.pool))
        if self.tiles:  # flat conv-output position of each window cell, [H', p_H, W', p_W]
            (ho, wo), (ph, pw) = out, self.pool
            rows = torch.arange(conv[0]).view(ho, ph, 1, 1)
            cols = torch.arange(conv[1]).view(1, 1, wo, pw)
            self.register_buffer("window_pos", rows * conv[1] + cols, persistent=False)
        bound = init_scale / math.sqrt(c * self.kernel[0] * self.kernel[1])
        self.weight = nn.Parameter(
            torch.empty(out_channels, c, *self.kernel).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None

    # ---- helpers --------------------------------------------------------------------------
    def _conv(self, s_lo: torch.Tensor) -> torch.Tensor:
        return F.conv2d(_channels_last(s_lo), self.weight, None, self.stride, self.padding)

    def _pool_context(self, y: torch.Tensor) -> PoolContext:
        idx = F.max_pool2d(y, self.pool, self.pool_stride, return_indices=True)[1]
        if not self.tiles:
            return PoolContext(idx, None)
        b, c, ho, wo = idx.shape
        return PoolContext(idx, idx.view(b, c, ho, 1, wo, 1) == self.window_pos)

    def _unpool(self, s_hi: torch.Tensor, ctx: PoolContext | None) -> torch.Tensor:
        """Place upper values at their arg-max positions of the conv output (summing overlaps):
        a product with the context's mask where the windows tile, else a ``scatter_add``."""
        s_hi = s_hi.view(s_hi.shape[0], *self.out_shape)
        if not self.pooled:
            return s_hi
        if ctx is None:
            raise ValueError("ConvPool with pooling needs the context (pooling indices) from "
                             "context(r_lo) for drive_down")
        b, c, ho, wo = s_hi.shape
        if ctx.mask is not None:
            s6 = s_hi[:, :, :, None, :, None]
            if (torch.is_grad_enabled() and s_hi.requires_grad) \
                    or torch.compiler.is_compiling():  # (a compiled step fuses it itself)
                return (s6 * ctx.mask).reshape(b, *self.conv_shape)
            # written straight into channels-last memory, the layout the down convolution reads
            out = torch.empty(b, *self.conv_shape, dtype=s_hi.dtype, device=s_hi.device,
                              memory_format=torch.channels_last)
            torch.mul(s6, ctx.mask, out=out.view(b, c, ho, self.pool[0], wo, self.pool[1]))
            return out
        idx = ctx.index
        z = s_hi.new_zeros(b, c, self.conv_shape[1] * self.conv_shape[2])
        if torch.is_grad_enabled() and s_hi.requires_grad:
            z = z.scatter_add(2, idx.flatten(2), s_hi.flatten(2))
        else:  # in place: one tensor fewer per step
            z.scatter_add_(2, idx.flatten(2), s_hi.flatten(2))
        return z.view(b, *self.conv_shape)

    def _flipped(self) -> torch.Tensor:
        """The kernel of the down drive as a convolution (flipped, in and out swapped). The
        weights do not change within a phase, so outside autograd it is made once per weight
        version (an optimizer step or a weight swap makes a new one) instead of every step."""
        w = self.down_weight()
        if (torch.is_grad_enabled() and w.requires_grad) \
                or torch.compiler.is_compiling():  # a compiled step computes it in its graph
            return w.flip(2, 3).transpose(0, 1)
        key = (w.data_ptr(), w._version, w.device, w.dtype, id(w))
        if self._flip_cache is None or self._flip_cache[0] != key:
            self._flip_cache = (key, w.detach().flip(2, 3).transpose(0, 1))
        return self._flip_cache[1]

    # ---- interface ------------------------------------------------------------------------
    def context(self, r_lo: torch.Tensor) -> PoolContext | None:
        """Max-pooling positions of ``conv(r_lo)`` (``None`` without pooling); one conv, no
        grad."""
        if not self.pooled:
            return None
        with torch.no_grad():
            return self._pool_context(self._conv(r_lo.view(r_lo.shape[0], *self.in_shape)))

    def _up(self, s_lo, ctx):
        """``maxpool(conv(s_lo))`` at the indices ``ctx`` (or its own indices), without bias."""
        y = self._conv(s_lo.view(s_lo.shape[0], *self.in_shape))
        if not self.pooled:
            return y
        if ctx is None:
            return F.max_pool2d(y, self.pool, self.pool_stride)
        return y.flatten(2).gather(2, ctx.index.flatten(2)).view(y.shape[0], *self.out_shape)

    def drive_up(self, s_lo, ctx=None):
        # NCHW like the layer states (the convolution's own output may be channels-last)
        y = self._up(s_lo, ctx).contiguous()
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def drive_down(self, s_hi, ctx=None):
        g = _channels_last(self._unpool(s_hi, ctx))
        if self._flip_pad is not None:
            return F.conv2d(g, self._flipped(), None, 1, self._flip_pad)
        return F.conv_transpose2d(g, self.down_weight(), None, self.stride, self.padding,
                                  self._out_pad)

    # fused forms used by the step (bias split out, added once per phase)
    def bias_up(self):
        return None if self.bias is None else self.bias.view(-1, 1, 1)

    def add_up_(self, acc, s_lo, ctx, alpha):
        y = self._up(s_lo, ctx)
        acc.view(y.shape).add_(y, alpha=alpha)  # y may be channels-last: add by index, no copy

    def add_down_(self, acc, s_hi, ctx, alpha):
        y = self.drive_down(s_hi, ctx)
        acc.view(y.shape).add_(y, alpha=alpha)

    def energy(self, r_lo, r_hi):
        """Per-sample ``-sum(r_hi * (maxpool(conv(r_lo)) + b))`` (eq. 3/13), shape ``[B]``."""
        return -(r_hi.view(r_hi.shape[0], *self.out_shape) * self.drive_up(r_lo)).flatten(1).sum(1)

    def contrast(self, r_lo, r_hi):
        b = r_lo.shape[0]
        r_lo = r_lo.view(b, *self.in_shape)
        g = self._unpool(r_hi, self.context(r_lo))
        grads = [-torch.nn.grad.conv2d_weight(r_lo, self.weight.shape, g, self.stride,
                                              self.padding) / b]
        if self.bias is not None:
            grads.append(-r_hi.view(b, *self.out_shape).sum((0, 2, 3)) / b)
        return self._with_feedback(grads)

    def macs(self) -> int:
        """``C_in K_H K_W C_out O_H O_W`` with O the convolution output size (eq. 16)."""
        return math.prod(self.weight.shape) * self.conv_shape[1] * self.conv_shape[2]

    def extra_repr(self) -> str:
        return (f"{self.in_shape} -> {self.out_shape}, kernel={self.kernel}, "
                f"stride={self.stride}, padding={self.padding}, pool={self.pool}, "
                f"pool_stride={self.pool_stride}")
