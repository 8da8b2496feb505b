"""The interaction interface: one coupling term of the energy between two adjacent layers.

An interaction between a lower layer (rates ``r_lo``) and an upper layer (``r_hi``) owns its
parameters and contributes ``-r_hi . up(r_lo)`` to the energy of eq. 3/13 (``up`` includes the
bias of the upper layer). It knows four things:

- ``drive_up(s_lo, ctx)``: ``d E_term / d r_hi`` with a minus sign, from spikes or rates below;
- ``drive_down(s_hi, ctx)``: ``-d E_term / d r_lo``, the feedback into the lower layer;
- ``energy(r_lo, r_hi)``: the term itself, per sample;
- ``contrast(r_lo, r_hi)``: ``d E_term / d theta`` averaged over the batch, one tensor per
  parameter, as used by the EP estimators (eq. 9, 14, 22).

``context(r_lo)`` lets an interaction precompute something from the rates below once per step
(a convolution with max-pooling takes its pooling indices from rates, not spikes); dense returns
``None``.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

# layer kind -> Interaction class; a config's layers: entry {kind: ...} builds one
from stochep.registry import INTERACTIONS  # noqa: F401 - re-exported: parts register here


class Interaction(nn.Module):
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    # True for a kind that reads an image (C, H, W): a flat 784 below the first one is read as
    # (1, 28, 28) (training.models.image_shape)
    needs_image: ClassVar[bool] = False
    # True for a first interaction whose drive depends on the layer above it (Hopfield
    # attention): the dynamics then call ``bind(x)`` once per phase instead of ``drive_up(x)``
    binds_input = False
    # True when the contrast is bilinear in (r_lo, r_hi) given the context of r_lo (dense,
    # conv): then a difference of contrasts over one r_lo is one contrast of the difference
    bilinear = False

    @classmethod
    def from_spec(cls, index: int, spec, in_shape: tuple[int, ...], init_scale: float = 1.0,
                  embedding: torch.Tensor | None = None) -> Interaction:
        """The interaction a config's ``layers[index]`` entry describes, above a layer of shape
        ``in_shape``; a bad entry is one ValueError naming ``layers[index]``."""
        raise NotImplementedError

    def example_input(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """A random valid input batch (for tools that measure without data)."""
        return torch.rand(batch, *self.in_shape, generator=generator)

    # ---- separate feedback weights (vector-field EP; rules/vf.py) ------------------------
    # Symmetric by default: ``drive_down`` uses the forward ``weight`` itself. An interaction
    # that supports feedback (dense, conv) reads :meth:`down_weight` in its down drive, so a
    # tensor set by :meth:`set_feedback` replaces ``W^T`` there and nowhere else (the energy,
    # ``drive_up`` and the contrasts of ``weight`` are unchanged). With no feedback set the
    # cost is one attribute lookup per down drive.
    supports_feedback: ClassVar[bool] = False

    def set_feedback(self, feedback: torch.Tensor, learned: bool) -> None:
        """Use ``feedback`` (``weight``'s shape) in the down drive: a parameter updated with
        the weight's own contrast when ``learned`` (listed after the interaction's other
        parameters), else a fixed buffer (saved with the model, never optimized)."""
        if not self.supports_feedback:
            raise ValueError(f"{type(self).__name__} does not support separate feedback weights "
                             "(dense and conv do)")
        if tuple(feedback.shape) != tuple(self.weight.shape):
            raise ValueError(f"feedback must have the weight's shape {tuple(self.weight.shape)}, "
                             f"got {tuple(feedback.shape)}")
        self._parameters.pop("feedback", None)
        self._buffers.pop("feedback", None)
        t = feedback.detach().clone().to(self.weight)
        if learned:
            self.register_parameter("feedback", nn.Parameter(t))
        else:
            self.register_buffer("feedback", t)

    @property
    def has_feedback(self) -> bool:
        return "feedback" in self._parameters or "feedback" in self._buffers

    def down_weight(self) -> torch.Tensor:
        """The weights of the down drive: the feedback if one is set, else ``weight``."""
        params = self._parameters  # dict reads, not nn.Module.__getattr__
        fb = params.get("feedback")
        if fb is None:
            fb = self._buffers.get("feedback")
        return params["weight"] if fb is None else fb

    def _with_feedback(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """``grads`` (weight first) plus the learned feedback's: the weight's contrast, so the
        feedback follows the forward weights' update (vector-field EP, rules/vf.py)."""
        if "feedback" in self._parameters:
            grads.append(grads[0].clone())
        return grads

    def context(self, r_lo: torch.Tensor):
        return None

    def drive_up(self, s_lo: torch.Tensor, ctx=None) -> torch.Tensor:
        raise NotImplementedError

    def drive_down(self, s_hi: torch.Tensor, ctx=None) -> torch.Tensor:
        raise NotImplementedError

    # ---- fused forms used by the fast step; the defaults fall back on drive_up/down ----
    def bias_up(self) -> torch.Tensor | None:
        """Constant part of ``drive_up`` (broadcastable to the upper layer) if it is split out.

        An interaction that returns a bias here must leave it out of :meth:`add_up_`.
        """
        return None

    def add_up_(self, acc: torch.Tensor, s_lo: torch.Tensor, ctx, alpha: float) -> None:
        """``acc += alpha * (drive_up(s_lo) - bias_up())`` in place."""
        acc.add_(self.drive_up(s_lo, ctx), alpha=alpha)

    def add_down_(self, acc: torch.Tensor, s_hi: torch.Tensor, ctx, alpha: float) -> None:
        """``acc += alpha * drive_down(s_hi)`` in place."""
        acc.add_(self.drive_down(s_hi, ctx), alpha=alpha)

    def energy(self, r_lo: torch.Tensor, r_hi: torch.Tensor) -> torch.Tensor:
        """Per-sample coupling energy ``-sum(r_hi * up(r_lo))``, shape ``[B]``."""
        return -(r_hi * self.drive_up(r_lo, self.context(r_lo))).flatten(1).sum(1)

    def contrast(self, r_lo: torch.Tensor, r_hi: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def contrast_difference(self, lo_a: torch.Tensor, hi_a: torch.Tensor, lo_b: torch.Tensor,
                            hi_b: torch.Tensor) -> list[torch.Tensor]:
        """``contrast(lo_a, hi_a) - contrast(lo_b, hi_b)`` (the EP estimate's numerator).

        A ``bilinear`` interaction given the same lower rates (the clamped input, in both
        phases) computes ``contrast(lo, hi_a - hi_b)``: one contrast (and context) instead of two.
        """
        if self.bilinear and lo_a is lo_b:
            return self.contrast(lo_a, hi_a - hi_b)
        return [a.sub_(b) for a, b in zip(self.contrast(lo_a, hi_a), self.contrast(lo_b, hi_b))]

    def macs(self) -> int:
        """Multiply-accumulates of one unidirectional pass for one sample (eq. 16)."""
        raise NotImplementedError


def spec_int(where: str, value, low: int = 1) -> int:
    """``value`` if it is an integer >= ``low``; else one ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where} must be an integer >= {low}, got {value!r}")
    return value
