"""In-memory dataset container, and the registry of datasets (:class:`DatasetSource`)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from stochep.registry import Registry


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


class DatasetSource:
    """A registered dataset: its shape and class count without reading it, and its loader.

    Subclass it in the dataset's module and decorate it with ``@DATASETS.register("name")``;
    then ``dataset: name`` in a config loads it, with ``data_options`` passed to :meth:`load`.
    """

    name = "dataset"
    input_shape: tuple[int, ...] = ()  # at the loader's defaults
    n_classes: int = 0

    @classmethod
    def load(cls, data_dir=None, **options) -> Dataset:
        raise NotImplementedError

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The ``data_options`` :meth:`load` takes."""
        params = inspect.signature(cls.load).parameters.values()
        return tuple(p.name for p in params if p.name != "data_dir"
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


DATASETS = Registry("dataset")


def dataset_shape(name: str) -> tuple[tuple[int, ...], int]:
    """``(input_shape, n_classes)`` of a dataset, without reading it. A flat 784 is read as
    (1, 28, 28) by conv layers (``training.models.image_shape``)."""
    source = _source(name)
    return source.input_shape, source.n_classes


def _source(name: str) -> type[DatasetSource]:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_dataset(name: str, data_dir: str | None = None, **options) -> Dataset:
    """The dataset registered as ``name``, from ``data_dir``, with the loader's ``options``;
    an option the loader does not take is one :class:`DataError` line naming the ones it does."""
    source = _source(name)
    known = source.option_names()
    for key in options:
        if key not in known:
            raise DataError(f"unknown data option {key!r} for dataset {name!r} "
                            f"(its options: {', '.join(known) or 'none'})")
    return source.load(data_dir, **options)
