"""In-memory dataset container and the registry of loaders."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class DataError(Exception):
    """A dataset is missing or malformed; the message names the file and what to do."""


@dataclass
class Dataset:
    """Train and test tensors: images as floats in [0, 1] ``[N, *input_shape]``, labels long.

    Text datasets hold token ids (as floats, exact below 2**24; 0 is padding) and the
    ``embedding`` matrix ``[vocab + 1, d]`` their first interaction looks the ids up in.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    embedding: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _digits(data_dir=None, **kw):
    from .digits import load_digits
    return load_digits(**kw)


def _mnist(data_dir=None, **kw):
    from .mnist import load_mnist
    return load_mnist(data_dir, **kw)


def _fashion_mnist(data_dir=None, **kw):
    from .mnist import load_fashion_mnist
    return load_fashion_mnist(data_dir, **kw)


def _cifar10(data_dir=None, **kw):
    from .cifar10 import load_cifar10
    return load_cifar10(data_dir, **kw)


def _imdb(data_dir=None, **kw):
    from .imdb import load_imdb
    return load_imdb(data_dir, **kw)


def _frames(load, data_dir, static: bool = False, **kw):
    """A frame dataset; ``static=True``: its frames summed into one (``events.summed``)."""
    from .events import summed
    if not isinstance(static, bool):
        raise DataError(f"static must be true or false, got {static!r}")
    ds = load(data_dir, **kw)
    return summed(ds) if static else ds


def _dvsgesture(data_dir=None, **kw):
    from .dvsgesture import load_dvsgesture
    return _frames(load_dvsgesture, data_dir, **kw)


def _event_mnist(data_dir=None, **kw):
    from .event_mnist import load_event_mnist
    return _frames(load_event_mnist, data_dir, **kw)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits, "mnist": _mnist, "fashion-mnist": _fashion_mnist, "cifar10": _cifar10,
    "imdb": _imdb, "dvsgesture": _dvsgesture, "event-mnist": _event_mnist,
}


# Input shape and number of classes of each dataset, for tools that need no data (memory,
# energy). A flat 784 is read as (1, 28, 28) by conv layers (stochep.models.image_shape).
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((64,), 10), "mnist": ((784,), 10), "fashion-mnist": ((784,), 10),
    "cifar10": ((3, 32, 32), 10), "imdb": ((256,), 2),
    # Event streams: [n_frames, polarity, H, W] at the loaders' defaults.
    "dvsgesture": ((60, 2, 32, 32), 11), "event-mnist": ((10, 2, 32, 32), 10),
}


def dataset_shape(name: str) -> tuple[tuple[int, ...], int]:
    """``(input_shape, n_classes)`` of a dataset, without reading it."""
    if name not in SHAPES:
        raise DataError(f"no known input shape for dataset {name!r} "
                        f"(known: {', '.join(sorted(SHAPES))})")
    return SHAPES[name]


def load_dataset(name: str, data_dir: str | None = None, **kw) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name](data_dir, **kw)
