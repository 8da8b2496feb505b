"""Validation split: a seeded, disjoint hold-out carved from the training set.

None of the bundled datasets ships its own validation split, so the validation set is always
carved out of the training images. The split depends only on the dataset size, the fraction and
the seed, so a resumed run (same config) holds out exactly the same images.
"""
from __future__ import annotations

import dataclasses

import torch

from .base import DataError, Dataset


def holdout_indices(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted ``(train, val)`` indices of ``range(n)``: ``round(fraction * n)`` (at least one)
    drawn at random with ``seed``, disjoint, together covering every index."""
    if not 0 < fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1) to hold out images, got {fraction!r}")
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise DataError(f"val_fraction={fraction} of {n} training images leaves none to train on")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def split_validation(data: Dataset, fraction: float, seed: int
                     ) -> tuple[Dataset, tuple[torch.Tensor, torch.Tensor] | None]:
    """``(training part, (x_val, y_val))``; with ``fraction == 0`` the dataset itself and None.

    The training part is a copy of ``data`` (same class, same test set) whose ``x_train`` and
    ``y_train`` keep only the images not held out, in their original order.
    """
    if fraction == 0:
        return data, None
    tr, va = holdout_indices(len(data.y_train), fraction, seed)
    train = dataclasses.replace(data, x_train=data.x_train[tr], y_train=data.y_train[tr])
    return train, (data.x_train[va], data.y_train[va])
