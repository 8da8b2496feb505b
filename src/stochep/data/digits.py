"""scikit-learn's handwritten digits (1,797 8x8 images, UCI optdigits), read offline.

The embedded default dataset: it ships inside the installed scikit-learn package, so
``stochep train`` needs no download. Pixels 0..16 are scaled to [0, 1]; a fixed seeded split
keeps 360 images (20%) for testing.
"""
from __future__ import annotations

import torch

from .base import DATASETS, Dataset, DatasetSource


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    n_test = round(test_fraction * len(y))
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te], n_classes=10)


@DATASETS.register("digits")
class Digits(DatasetSource):
    """scikit-learn's 8x8 digits, embedded: the default that needs no download."""

    input_shape, n_classes = (64,), 10

    @classmethod
    def load(cls, data_dir=None, test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
        return load_digits(test_fraction, split_seed)
