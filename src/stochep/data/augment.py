"""Training-time augmentation for image batches (CIFAR-10): random crop and horizontal flip.

The standard CIFAR recipe: zero-pad 4 pixels on each side, crop back to the original size at a
random offset, and mirror left-right with probability 1/2. Vectorised over the batch (one
gather); every random number comes from the given ``torch.Generator``, so a seed fixes the result.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4,
                  flip: bool = True) -> torch.Tensor:
    """Randomly cropped (after ``pad``-pixel zero padding) and flipped copy of ``x [B, C, H, W]``.

    Zero padding pads with 0 in whatever space ``x`` is in (the channel mean, for normalised
    images). Offsets and flips are drawn on the generator's device, then moved to ``x``'s.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a [B, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be an integer >= 0, got {pad!r}")
    b, _, h, w = x.shape
    dev = generator.device
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=dev).to(x.device)
    mirror = torch.randint(0, 2, (b,), generator=generator, device=dev).to(x.device).bool()
    if not flip:
        mirror.zero_()
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # [B, H]
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = offsets[:, 1:] + torch.where(mirror[:, None], w - 1 - cols, cols)  # [B, W]
    wp = w + 2 * pad
    idx = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)  # flat source pixels
    out = padded.flatten(2).gather(2, idx.expand(b, x.shape[1], h * w))
    return out.view_as(x)
